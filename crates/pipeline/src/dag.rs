//! Graph checks and orders over stages' `needs`.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::Stage;

/// Most cycles [`cycles`] reports: past these, a file has a structural problem that more
/// reports would not help with, and collecting each cycle's path costs its length.
pub const MAX_CYCLES: usize = 20;

/// Cycles found by a depth-first search (at most [`MAX_CYCLES`]), each as the list of its
/// stage ids in `needs` order (one report per strongly connected loop is enough for a
/// diagnostic). Linear in stages and needs, plus the length of each cycle reported.
pub fn cycles(stages: &IndexMap<String, Stage>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = stages.keys().map(|k| (k.as_str(), Mark::New)).collect();
    let mut found = Vec::new();
    for start in stages.keys() {
        if marks.get(start.as_str()) != Some(&Mark::New) {
            continue;
        }
        // Iterative DFS: (node, next need index), with the current path.
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        marks.insert(start.as_str(), Mark::Active);
        while let Some((node, next)) = stack.last().copied() {
            let needs = stages.get(node).map(|s| s.needs.as_slice()).unwrap_or(&[]);
            if let Some(need) = needs.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let Some((need_key, _)) = stages.get_key_value(need.as_str()) else {
                    continue;
                };
                match marks.get(need_key.as_str()) {
                    Some(Mark::New) => {
                        marks.insert(need_key.as_str(), Mark::Active);
                        stack.push((need_key.as_str(), 0));
                    }
                    Some(Mark::Active) if found.len() < MAX_CYCLES => {
                        if let Some(pos) = stack.iter().position(|(n, _)| *n == need_key.as_str()) {
                            found.push(stack[pos..].iter().map(|(n, _)| (*n).to_owned()).collect());
                        }
                    }
                    _ => {}
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    found
}

/// The stages in layers: each layer's stages need only stages of earlier layers. Stages on a
/// cycle (rejected by validation), and those needing them, are left out. Within a layer, file
/// order is kept. Linear in stages and needs (Kahn's algorithm; a stage's layer is one past its
/// deepest need's).
pub fn layers(stages: &IndexMap<String, Stage>) -> Vec<Vec<String>> {
    let count = stages.len();
    let mut waiting_on = vec![0usize; count];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (index, stage) in stages.values().enumerate() {
        for need in &stage.needs {
            if let Some(need_index) = stages.get_index_of(need.as_str()) {
                waiting_on[index] += 1;
                dependents[need_index].push(index);
            }
        }
    }
    let mut layer_of = vec![0usize; count];
    let mut ready: Vec<usize> = (0..count).filter(|&i| waiting_on[i] == 0).collect();
    let mut placed: Vec<usize> = Vec::with_capacity(count);
    while let Some(index) = ready.pop() {
        placed.push(index);
        for &dependent in &dependents[index] {
            layer_of[dependent] = layer_of[dependent].max(layer_of[index] + 1);
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(dependent);
            }
        }
    }
    placed.sort_unstable_by_key(|&i| (layer_of[i], i));
    let mut out: Vec<Vec<String>> = Vec::new();
    for index in placed {
        let Some((id, _)) = stages.get_index(index) else {
            continue;
        };
        if out.len() <= layer_of[index] {
            out.push(Vec::new());
        }
        if let Some(layer) = out.last_mut() {
            layer.push(id.clone());
        }
    }
    out
}

/// Every stage that needs `id`, directly or not (within `stages`).
pub fn dependents(stages: &IndexMap<String, Stage>, id: &str) -> HashSet<String> {
    let mut needed_by: HashMap<&str, Vec<&str>> = HashMap::new();
    for stage in stages.values() {
        for need in &stage.needs {
            needed_by
                .entry(need.as_str())
                .or_default()
                .push(stage.id.as_str());
        }
    }
    let mut seen = HashSet::new();
    let mut todo: Vec<&str> = needed_by.get(id).cloned().unwrap_or_default();
    while let Some(next) = todo.pop() {
        if seen.insert(next.to_owned())
            && let Some(more) = needed_by.get(next)
        {
            todo.extend(more.iter().copied());
        }
    }
    seen
}

/// Whether `stage` needs `target`, directly or not (within `stages`). A search from `stage`
/// that stops when it finds `target`: cheap for the usual reference to a near stage, where
/// building every stage's ancestor set would be quadratic on long chains.
pub fn needs_transitively(stages: &IndexMap<String, Stage>, stage: &str, target: &str) -> bool {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo: Vec<&str> = stages
        .get(stage)
        .map(|s| s.needs.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(next) = todo.pop() {
        if next == target {
            return true;
        }
        if seen.insert(next)
            && let Some(stage) = stages.get(next)
        {
            todo.extend(stage.needs.iter().map(String::as_str));
        }
    }
    false
}

/// The ids of every stage `id` needs, directly or not.
pub fn ancestors(stages: &IndexMap<String, Stage>, id: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut todo: Vec<&str> = stages
        .get(id)
        .map(|s| s.needs.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(next) = todo.pop() {
        if seen.insert(next.to_owned())
            && let Some(stage) = stages.get(next)
        {
            todo.extend(stage.needs.iter().map(String::as_str));
        }
    }
    seen
}
