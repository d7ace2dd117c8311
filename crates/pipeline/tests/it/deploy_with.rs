//! The `with` of `uses: deploy` with `target: kubernetes`: every setting of the `kubernetes:`
//! block is typed, so unknown keys and wrong types are found by validation, at their line and
//! column; settings the chosen target would ignore are errors too.

use std::sync::Arc;

use uplift_pipeline::stages::deploy::{DEPLOY_SPEC, DeployWith};
use uplift_pipeline::with::parse_with;
use uplift_pipeline::{Catalog, parse};

fn catalog() -> Catalog {
    let mut catalog = Catalog::basic();
    catalog.add(Arc::new(DEPLOY_SPEC));
    catalog
}

const GOOD: &str = r#"stages:
  deploy:
    uses: deploy
    with:
      target: kubernetes
      name: portal
      image: registry.local/portal@sha256:2222222222222222222222222222222222222222222222222222222222222222
      replicas: 2
      env: { NODE_ENV: production }
      kubernetes:
        namespace: web
        context: prod
        port: 7007
        secret-env: { POSTGRES_PASSWORD: { secret: portal-db, key: password } }
        secrets: [portal-tokens]
        config: { APP_CONFIG_app_baseUrl: "https://portal.example.com" }
        postgres: { host: postgres.db.svc.cluster.local, port: 5432 }
        ingress: { host: portal.example.com, class-name: nginx, tls-secret: portal-tls }
        probes: { readiness: /ready, liveness: /live }
        resources: { cpu: "1", memory: 1Gi }
        progress-deadline-seconds: 300
        services:
          catalog: { plugins: [catalog, search], replicas: 3 }
          web: { plugins: [app, auth] }
"#;

/// The one problem of `text`: (line, column, message).
fn problem(text: &str) -> (usize, usize, String) {
    let d = parse("p.yml", text, &catalog()).unwrap_err();
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    let p = &d.problems[0];
    (p.line, p.column, p.message.clone())
}

#[test]
fn every_kubernetes_setting_is_typed() {
    let pipeline = parse("p.yml", GOOD, &catalog()).unwrap();
    let with: DeployWith = parse_with(&pipeline.stage("deploy").unwrap().with).unwrap();
    let k = with.kubernetes.unwrap();
    assert_eq!(k.namespace.as_deref(), Some("web"));
    assert_eq!(k.context.as_deref(), Some("prod"));
    assert_eq!(k.port, Some(7007));
    assert_eq!(k.secret_env["POSTGRES_PASSWORD"].key, "password");
    assert_eq!(k.ingress.unwrap().tls_secret.as_deref(), Some("portal-tls"));
    assert_eq!(k.probes.unwrap().liveness.as_deref(), Some("/live"));
    assert_eq!(k.resources.unwrap().memory.as_deref(), Some("1Gi"));
    assert_eq!(k.progress_deadline_seconds, Some(300));
    assert_eq!(k.services["catalog"].plugins, ["catalog", "search"]);
    assert_eq!(k.services["catalog"].replicas, Some(3));
    assert_eq!(k.services["web"].replicas, None);
}

#[test]
fn unknown_keys_are_found_at_any_depth() {
    let (line, column, message) = problem(&GOOD.replace("namespace: web", "namspace: web"));
    assert_eq!((line, column), (11, 9), "{message}");
    assert!(message.contains("unknown field `namspace`"), "{message}");
    assert!(message.contains("`with.kubernetes.namspace`"), "{message}");

    let (line, column, message) = problem(&GOOD.replace("class-name: nginx", "class: nginx"));
    assert_eq!((line, column), (18, 46), "{message}");
    assert!(message.contains("unknown field `class`"), "{message}");

    let (line, column, message) = problem(&GOOD.replace(
        "web: { plugins: [app, auth] }",
        "web: { plugins: [app, auth], replica: 2 }",
    ));
    assert_eq!((line, column), (24, 40), "{message}");
    assert!(
        message.contains("`with.kubernetes.services.web.replica`"),
        "{message}"
    );
}

#[test]
fn wrong_types_are_found_at_their_value() {
    let (line, column, message) = problem(&GOOD.replace("port: 7007", "port: 70000"));
    assert_eq!((line, column), (13, 15), "{message}");
    assert!(message.contains("`with.kubernetes.port`"), "{message}");

    let (line, column, message) = problem(&GOOD.replace("replicas: 3 }", "replicas: three }"));
    assert_eq!((line, column), (23, 60), "{message}");
    assert!(message.contains("invalid type"), "{message}");

    let (line, column, message) =
        problem(&GOOD.replace("secrets: [portal-tokens]", "secrets: portal-tokens"));
    assert_eq!((line, column), (15, 18), "{message}");
    assert!(message.contains("expected a sequence"), "{message}");

    let (line, column, message) = problem(&GOOD.replace(
        "ingress: { host: portal.example.com, class-name: nginx, tls-secret: portal-tls }",
        "ingress: portal.example.com",
    ));
    assert_eq!((line, column), (18, 18), "{message}");
    assert!(message.contains("invalid type"), "{message}");

    // A missing required key: the plugins of a split backend.
    let (line, column, message) =
        problem(&GOOD.replace("web: { plugins: [app, auth] }", "web: { replicas: 2 }"));
    assert_eq!((line, column), (24, 16), "{message}");
    assert!(message.contains("missing field `plugins`"), "{message}");
}

#[test]
fn settings_the_target_would_ignore_are_errors() {
    // A Docker setting with `target: kubernetes`, at its key.
    let text = GOOD.replace(
        "      replicas: 2\n",
        "      replicas: 2\n      ports: [7007]\n",
    );
    let (line, column, message) = problem(&text);
    assert_eq!((line, column), (9, 7), "{message}");
    assert!(
        message.contains("`ports` is a Docker setting, ignored by `target: kubernetes`"),
        "{message}"
    );
    let text = GOOD.replace(
        "      replicas: 2\n",
        "      replicas: 2\n      secrets: { TOKEN: x }\n",
    );
    let (_, _, message) = problem(&text);
    assert!(message.contains("kubernetes.secret-env"), "{message}");
    // A `kubernetes:` block without `target: kubernetes`.
    let (line, column, message) = problem(&GOOD.replace("      target: kubernetes\n", ""));
    assert_eq!((line, column), (9, 7), "{message}");
    assert!(message.contains("need `target: kubernetes`"), "{message}");
}

#[test]
fn expressions_are_checked_when_the_stage_runs() {
    parse(
        "p.yml",
        &GOOD.replace("port: 7007", "port: ${{ env.PORT }}"),
        &catalog(),
    )
    .unwrap();
}
