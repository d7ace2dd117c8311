//! The public API: a checked pipeline's model, layers and ancestors.

use uplift_pipeline::{Catalog, parse};

const TEXT: &str = r#"
name: api
upstream:
  source: git:/srv/upstream.git
  template: [default-app, 2.0.0=next-app]
  values: {name: portal}
  marker: {file: backstage.json, field: version}
stages:
  a:
    uses: upgrade
    with: {to: "2.0.0", conflict-style: diff3}
  b:
    uses: run
    needs: a
    timeout: 90s
    retries: {count: 2, backoff: 100ms, max-backoff: 150ms}
    with: {run: make}
  c:
    uses: run
    needs: [a]
    with: {run: make test}
  d:
    uses: run
    needs: [b, c]
    with: {run: make dist}
finally:
  z:
    uses: run
    with: {run: echo done}
"#;

#[test]
fn model_layers_and_ancestors() {
    let p = parse("api.yml", TEXT, &Catalog::basic()).unwrap();
    assert_eq!(p.name, "api");
    let (main, fin) = p.layers();
    assert_eq!(main, vec![vec!["a"], vec!["b", "c"], vec!["d"]]);
    assert_eq!(fin, vec![vec!["z"]]);
    let mut anc: Vec<String> = p.ancestors("d").into_iter().collect();
    anc.sort();
    assert_eq!(anc, ["a", "b", "c"]);
    let b = p.stage("b").unwrap();
    assert_eq!(b.timeout, Some(std::time::Duration::from_secs(90)));
    assert_eq!(b.retries.count, 2);
    assert_eq!(b.retries.delay(1), std::time::Duration::from_millis(100));
    assert_eq!(b.retries.delay(2), std::time::Duration::from_millis(150));
    let up = p.upstream.as_ref().unwrap();
    assert_eq!(up.marker.as_ref().unwrap().file, "backstage.json");
    let with: uplift_pipeline::with::UpgradeWith =
        uplift_pipeline::with::parse_with(&p.stage("a").unwrap().with).unwrap();
    assert_eq!(with.to, "2.0.0");
    assert_eq!(with.app, ".");
    assert_eq!(
        with.conflict_style,
        uplift_pipeline::with::ConflictStyle::Diff3
    );
    assert!(p.stage("z").unwrap().finally);
}

#[test]
fn template_entries_are_checked() {
    let text = TEXT.replace("2.0.0=next-app", "two=next-app");
    let d = parse("api.yml", &text, &Catalog::basic()).unwrap_err();
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    assert_eq!((d.problems[0].line, d.problems[0].column), (5, 27));
    assert!(d.problems[0].message.contains("`two=next-app`"));
}

#[test]
fn typed_settings_may_be_expressions() {
    let text = "stages:\n  a:\n    uses: upgrade\n    with:\n      allow-conflicts: ${{ env.ALLOW == 'yes' }}\n";
    parse("e.yml", text, &Catalog::basic()).unwrap();
    let text = "stages:\n  a:\n    uses: upgrade\n    with:\n      allow-conflicts: maybe\n";
    let d = parse("e.yml", text, &Catalog::basic()).unwrap_err();
    assert_eq!(
        (d.problems[0].line, d.problems[0].column),
        (5, 24),
        "{:?}",
        d.problems
    );
}

#[test]
fn main_stage_cannot_need_a_finally_stage() {
    let text = "stages:\n  a:\n    uses: run\n    needs: z\n    with: {run: x}\nfinally:\n  z:\n    uses: run\n    with: {run: x}\n";
    let d = parse("f.yml", text, &Catalog::basic()).unwrap_err();
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    assert_eq!((d.problems[0].line, d.problems[0].column), (4, 12));
    assert!(d.problems[0].message.contains("a `finally` stage"));
}

#[test]
fn a_byte_order_mark_before_the_first_key_is_not_a_second_document() {
    let with_bom = format!("\u{feff}{}", TEXT.trim_start());
    let p = parse("bom.yml", &with_bom, &Catalog::basic()).unwrap();
    assert_eq!(p.name, "api");
    // Anywhere else it is content, and an error.
    let inside = TEXT.replace("name: api", "name: api\n\u{feff}x: 1");
    assert!(parse("bom.yml", &inside, &Catalog::basic()).is_err());
}
