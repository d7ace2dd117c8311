//! "Did you mean …?": the nearest known name to a misspelt one.

/// The candidate nearest to `name` (Damerau–Levenshtein), if it is close enough to be a
/// likely typo: at most one edit per three characters (at least one). Ties go to the first.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = name.chars().count();
    let limit = (length / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        // Cheap bound first: the length difference alone is at least that many edits.
        if candidate.chars().count().abs_diff(length) > limit || candidate == name {
            continue;
        }
        let distance = strsim::damerau_levenshtein(name, candidate);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `did you mean `x`?` for `name`, if a candidate is near.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    nearest(name, candidates).map(|found| format!("did you mean `{found}`?"))
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or `b`"):
/// the suggestion among the expected names.
pub fn for_unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected")?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    did_you_mean(name, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_far_ones_not() {
        let keys = ["uses", "with", "needs", "retries", "timeout"];
        assert_eq!(nearest("retires", keys), Some("retries"));
        assert_eq!(nearest("need", keys), Some("needs"));
        assert_eq!(nearest("nedes", keys), Some("needs"));
        assert_eq!(nearest("rn", ["run", "shell"]), Some("run"));
        assert_eq!(nearest("bogus", keys), None);
        assert_eq!(nearest("uses", keys), None);
    }

    #[test]
    fn serde_messages() {
        assert_eq!(
            for_unknown_field(
                "unknown field `rn`, expected one of `run`, `shell`, `working-directory`"
            )
            .as_deref(),
            Some("did you mean `run`?")
        );
        assert_eq!(
            for_unknown_field("unknown field `fiel`, expected `file` or `field`").as_deref(),
            Some("did you mean `file`?")
        );
        assert_eq!(for_unknown_field("invalid type: string"), None);
    }
}
