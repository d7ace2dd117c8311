//! Graph checks and orders over stages' `needs`.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::Stage;

/// Every elementary cycle found by a depth-first search, each as the list of its stage ids in
/// `needs` order (one report per strongly connected loop is enough for a diagnostic).
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
                    Some(Mark::Active) => {
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
/// cycle (rejected by validation) are left out. Within a layer, file order is kept.
pub fn layers(stages: &IndexMap<String, Stage>) -> Vec<Vec<String>> {
    let mut placed: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    loop {
        let layer: Vec<String> = stages
            .values()
            .filter(|s| !placed.contains(s.id.as_str()))
            .filter(|s| {
                s.needs
                    .iter()
                    .all(|n| placed.contains(n.as_str()) || !stages.contains_key(n))
            })
            .map(|s| s.id.clone())
            .collect();
        if layer.is_empty() {
            return out;
        }
        for id in &layer {
            if let Some((k, _)) = stages.get_key_value(id.as_str()) {
                placed.insert(k.as_str());
            }
        }
        out.push(layer);
    }
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
