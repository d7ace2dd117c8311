//! Judges merge results made by any tool with the checks Uplift's own merge must pass (used by
//! `benches/replay.py` for its `git merge-file` baseline and for Uplift's results alike).
//!
//! Usage: `check_merged ROOT < paths`: for each relative path read from stdin, the versions
//! `ROOT/{base,ours,theirs,merged}/PATH` (a missing one is empty) are checked; prints
//! `PATH<TAB>ok` or `PATH<TAB>REASON`.

use std::io::BufRead;
use std::path::Path;

use uplift_tree::RelPath;

fn main() -> std::process::ExitCode {
    let Some(root) = std::env::args().nth(1) else {
        eprintln!("usage: check_merged ROOT < paths");
        return std::process::ExitCode::from(2);
    };
    let read = |side: &str, path: &str| {
        std::fs::read(Path::new(&root).join(side).join(path))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Ok(path) = RelPath::new(line.as_str()) else {
            println!("{line}\tnot a relative path");
            continue;
        };
        let [base, ours, theirs, merged] =
            ["base", "ours", "theirs", "merged"].map(|side| read(side, &line));
        match uplift_merge::check_merged(&path, [&base, &ours, &theirs], &merged) {
            Ok(()) => println!("{line}\tok"),
            Err(reason) => println!("{line}\t{reason}"),
        }
    }
    std::process::ExitCode::SUCCESS
}
