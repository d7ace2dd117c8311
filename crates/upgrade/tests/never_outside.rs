//! Property (issue 10, item 1): for random base/app/target trees with symlinks (pointing
//! inside the app, outside it, absolute, dangling), an upgrade changes nothing outside the app
//! folder, and one that fails changes nothing at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use proptest::prelude::*;
use uplift_upgrade::{ApplyOptions, Marker, UpgradeRequest, Upstream, UpstreamConfig};

/// What stands at a name.
#[derive(Debug, Clone)]
enum Node {
    File(u8),
    Link(&'static str),
    Dir(Vec<(&'static str, Node)>),
}

/// `ABS` is replaced by the absolute path of the folder beside the app.
const TARGETS: &[&str] = &[
    "../outside",
    "ABS",
    "ABS/sub",
    "e",
    "d",
    "a",
    "x",
    "../x",
    "../../outside",
    "nowhere",
];
const NAMES: &[&str] = &["a", "d", "e", "l"];
const CHILDREN: &[&str] = &["x", "y", "l"];

fn leaf() -> impl Strategy<Value = Option<Node>> {
    prop_oneof![
        2 => Just(None),
        3 => (0u8..3).prop_map(|c| Some(Node::File(c))),
        2 => proptest::sample::select(TARGETS).prop_map(|t| Some(Node::Link(t))),
    ]
}

fn node() -> impl Strategy<Value = Option<Node>> {
    prop_oneof![
        3 => leaf(),
        2 => proptest::collection::vec(leaf(), CHILDREN.len()).prop_map(|children| {
            Some(Node::Dir(
                CHILDREN
                    .iter()
                    .zip(children)
                    .filter_map(|(name, child)| Some((*name, child?)))
                    .collect(),
            ))
        }),
    ]
}

fn tree() -> impl Strategy<Value = Vec<(&'static str, Node)>> {
    proptest::collection::vec(node(), NAMES.len()).prop_map(|nodes| {
        NAMES
            .iter()
            .zip(nodes)
            .filter_map(|(name, node)| Some((*name, node?)))
            .collect()
    })
}

fn write(dir: &Path, nodes: &[(&str, Node)], outside: &Path) {
    fs::create_dir_all(dir).unwrap();
    for (name, node) in nodes {
        let path = dir.join(name);
        match node {
            Node::File(content) => fs::write(&path, format!("content {content}\n")).unwrap(),
            Node::Link(target) => {
                let target = target.replace("ABS", &outside.display().to_string());
                symlink(target, &path).unwrap();
            }
            Node::Dir(children) => write(&path, children, outside),
        }
    }
}

fn snapshot(dir: &Path) -> Vec<(String, String)> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = e.path().symlink_metadata().unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(e.path()).unwrap().display())
            } else if meta.is_dir() {
                "dir".to_string()
            } else {
                String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned()
            };
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                what,
            )
        })
        .collect()
}

fn upgrade(root: &Path, app: &Path) -> Result<(), uplift_upgrade::Error> {
    let upstream = Upstream::open(UpstreamConfig::new(format!(
        "dir:{}",
        root.join("templates").display()
    )))?;
    let request = UpgradeRequest {
        app: app.to_path_buf(),
        from: None,
        to: "2.0.0".to_string(),
        marker: Marker::default(),
        merge: Default::default(),
    };
    let prepared = uplift_upgrade::prepare(&upstream, &request)?;
    let options = ApplyOptions {
        allow_dirty: true,
        ..Default::default()
    };
    uplift_upgrade::apply(&prepared, &options).map(|_| ())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn an_upgrade_never_changes_anything_outside_the_app(
        base in tree(),
        ours in tree(),
        theirs in tree(),
    ) {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        fs::create_dir_all(outside.join("sub")).unwrap();
        fs::write(outside.join("x"), "outside x").unwrap();
        fs::write(outside.join("sub/y"), "outside y").unwrap();
        fs::write(outside.join("backstage.json"), "{\"version\": \"0.0.1\"}").unwrap();
        for (version, nodes) in [("1.0.0", &base), ("2.0.0", &theirs)] {
            let dir = root.path().join("templates").join(version);
            write(&dir, nodes, &outside);
            fs::write(dir.join("backstage.json"), format!("{{\"version\": \"{version}\"}}\n"))
                .unwrap();
        }
        let app = root.path().join("app");
        write(&app, &ours, &outside);
        fs::write(app.join("backstage.json"), "{\"version\": \"1.0.0\"}\n").unwrap();
        let outside_before = snapshot(&outside);
        let app_before = snapshot(&app);
        let result = upgrade(root.path(), &app);
        prop_assert_eq!(&snapshot(&outside), &outside_before, "outside changed: {:?}", result);
        prop_assert!(!app.join(".uplift-apply").exists());
        if result.is_err() {
            prop_assert_eq!(&snapshot(&app), &app_before, "a failed upgrade changed the app");
        }
    }
}
