//! Property-based fuzzing: the file parser and the expression parser never panic, whatever the
//! input. Bounded for CI: a fixed number of cases per property (PROPTEST_CASES overrides).

use proptest::prelude::*;
use uplift_pipeline::expr::{Expr, Template};
use uplift_pipeline::{Catalog, parse};

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Pieces of pipeline files: recombined, they reach deep into the checker.
fn yaml_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("stages:\n".to_owned()),
        Just("finally:\n".to_owned()),
        Just("upstream:\n  source: dir:x\n  template: [a, 1.0.0=b, '=']\n".to_owned()),
        Just("  a:\n".to_owned()),
        Just("  b:\n".to_owned()),
        Just("    uses: run\n".to_owned()),
        Just("    uses: upgrade\n".to_owned()),
        Just("    needs: [a, b]\n".to_owned()),
        Just("    needs: a\n".to_owned()),
        Just("    if: ${{ success() && stages.a.outputs.x == 'y' }}\n".to_owned()),
        Just("    if: failure( ||\n".to_owned()),
        Just("    timeout: 1s\n".to_owned()),
        Just("    retries: {count: 2, backoff: 1x}\n".to_owned()),
        Just("    outputs: [x]\n".to_owned()),
        Just("    with:\n      run: echo ${{ env.X }}\n".to_owned()),
        Just("    with: {run: \"${{ stages.b.result }}\", shell: bash}\n".to_owned()),
        Just("    env: {A: ${{ secrets.S }}}\n".to_owned()),
        Just("- ".to_owned()),
        Just(": ".to_owned()),
        Just("&anchor ".to_owned()),
        Just("*anchor\n".to_owned()),
        Just("? ".to_owned()),
        Just("[{".to_owned()),
        Just("'\"".to_owned()),
        Just("\t".to_owned()),
        "[ -~\n]{0,12}",
    ]
}

fn expr_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("${{".to_owned()),
        Just("}}".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("!".to_owned()),
        Just("==".to_owned()),
        Just("!=".to_owned()),
        Just("&&".to_owned()),
        Just("||".to_owned()),
        Just("'str''s'".to_owned()),
        Just("'".to_owned()),
        Just("12.5".to_owned()),
        Just("-3".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("success()".to_owned()),
        Just("env.X".to_owned()),
        Just("stages.a-b.outputs.c".to_owned()),
        Just(" ".to_owned()),
        "[ -~]{0,6}",
    ]
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn file_parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse("fuzz.yml", &text, &Catalog::basic());
    }

    #[test]
    fn file_parser_never_panics_on_yaml_like_text(tokens in proptest::collection::vec(yaml_token(), 0..40)) {
        let text: String = tokens.concat();
        match parse("fuzz.yml", &text, &Catalog::basic()) {
            Ok(_) => {}
            Err(diagnostics) => {
                // Every problem points inside the file, and rendering it works.
                for p in &diagnostics.problems {
                    prop_assert!(p.line >= 1 && p.column >= 1);
                    prop_assert!(p.offset <= text.len());
                }
                let _ = diagnostics.render(false);
            }
        }
    }

    #[test]
    fn expression_parser_never_panics(tokens in proptest::collection::vec(expr_token(), 0..30)) {
        let text: String = tokens.concat();
        if let Err(e) = Expr::parse_condition(&text) {
            prop_assert!(e.offset <= text.len());
        }
        if let Err(e) = Template::parse(&text) {
            prop_assert!(e.offset <= text.len());
        }
    }

    #[test]
    fn expression_parser_never_panics_on_any_string(text in "\\PC{0,64}") {
        let _ = Expr::parse_condition(&text);
        let _ = Template::parse(&text);
    }
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let deep = "(".repeat(100_000);
    assert!(Expr::parse_condition(&deep).is_err());
    let yaml = format!("stages: {}", "[".repeat(100_000));
    assert!(parse("deep.yml", &yaml, &Catalog::basic()).is_err());
    let yaml = format!(
        "stages:\n{}",
        (0..2000)
            .map(|i| format!("{}- x\n", " ".repeat(i)))
            .collect::<String>()
    );
    assert!(parse("deep.yml", &yaml, &Catalog::basic()).is_err());
}
