//! The check every merged script file must pass to be reported as a clean merge, like the
//! JSON/YAML validation: it parses, imports no name twice and registers nothing twice that
//! neither side had twice, and imports exactly what the three-way merge of the imports as sets
//! gives (a clean line merge that imports anything else changed what the file declares).

use std::collections::HashMap;

use super::imports::{self, Element, Group};
use super::registrations::{duplicated, registrations};
use super::syntax::{Dialect, Parsed};

/// `Err(reason)` when `merged`, the merge of `[base, ours, theirs]`, is not a result to report
/// as clean.
pub(crate) fn check(
    dialect: Dialect,
    [base, ours, theirs]: [&str; 3],
    merged: &str,
) -> Result<(), String> {
    let parse = |text| {
        Parsed::new(dialect, text)
            .ok_or_else(|| format!("the merged file could not be parsed as {}", dialect.name()))
    };
    let result = parse(merged)?;
    let inputs = [parse(base)?, parse(ours)?, parse(theirs)?];
    if let Some(line) = result.first_error_line()
        && inputs.iter().all(|input| !input.root().has_error())
    {
        return Err(format!(
            "the merged file does not parse as {} (line {line})",
            dialect.name()
        ));
    }
    let declared = [
        imports::declarations(&inputs[0]),
        imports::declarations(&inputs[1]),
        imports::declarations(&inputs[2]),
    ];
    let merged_imports = imports::declarations(&result);
    let (ours_names, theirs_names) = (local_names(&declared[1]), local_names(&declared[2]));
    let mut twice: Vec<(&str, Vec<usize>)> = local_lines(&result, &merged_imports)
        .into_iter()
        .filter(|(name, lines)| {
            let most = ours_names.get(name).copied().unwrap_or(0);
            lines.len()
                > most
                    .max(theirs_names.get(name).copied().unwrap_or(0))
                    .max(1)
        })
        .collect();
    twice.sort();
    if let Some((name, lines)) = twice.first() {
        let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
        return Err(format!(
            "`{name}` would be imported {} times (lines {}), more often than by either side",
            lines.len(),
            lines.join(", ")
        ));
    }
    let expected = as_sets(imports::merged_groups(
        &declared[0],
        &declared[1],
        &declared[2],
    ));
    let actual = as_sets(imports::grouped(&merged_imports));
    if expected != actual {
        return Err(format!(
            "the line merge changed the imports differently from both sides' changes ({})",
            difference(&expected, &actual)
        ));
    }
    let all = registrations(&result);
    let duplicates = duplicated(&all, &registrations(&inputs[1]), &registrations(&inputs[2]));
    if let Some((first, again)) = duplicates.first() {
        return Err(format!(
            "{} would be registered twice in {} (lines {} and {}), which neither side does",
            again.label,
            again.context,
            result.line_at(first.range.start),
            result.line_at(again.range.start)
        ));
    }
    Ok(())
}

fn local_names(imports: &[imports::Import]) -> HashMap<&str, usize> {
    let mut names = HashMap::new();
    for local in imports
        .iter()
        .flat_map(|i| &i.elements)
        .filter_map(Element::local)
    {
        *names.entry(local).or_default() += 1;
    }
    names
}

fn local_lines<'i>(
    parsed: &Parsed<'_>,
    imports: &'i [imports::Import],
) -> HashMap<&'i str, Vec<usize>> {
    let mut lines: HashMap<&str, Vec<usize>> = HashMap::new();
    for import in imports {
        for local in import.elements.iter().filter_map(Element::local) {
            lines
                .entry(local)
                .or_default()
                .push(parsed.line_at(import.range.start));
        }
    }
    lines
}

type Sets = Vec<(Group, Vec<String>)>;

/// Groups with their elements as sorted lists, empty groups left out, sorted by group.
fn as_sets(groups: Vec<(Group, Vec<Element>)>) -> Sets {
    let mut sets: Sets = groups
        .into_iter()
        .filter(|(_, elements)| !elements.is_empty())
        .map(|(group, elements)| {
            let mut names: Vec<String> = elements.iter().map(|e| format!("{e:?}")).collect();
            names.sort();
            (group, names)
        })
        .collect();
    sets.sort();
    sets
}

fn difference(expected: &Sets, actual: &Sets) -> String {
    let modules: Vec<&str> = expected
        .iter()
        .filter(|set| !actual.contains(set))
        .chain(actual.iter().filter(|set| !expected.contains(set)))
        .map(|(group, _)| group.module.as_str())
        .collect();
    let mut modules = modules;
    modules.dedup();
    format!("imports from {}", modules.join(", "))
}
