//! The syntax-aware merge of TypeScript/TSX/JavaScript, on the cases real Backstage upgrades
//! produce: each case first shows what the line merge alone does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use uplift_merge::{Action, FilePlan, MergeOptions, TextOptions, merge_text, merge_trees};
use uplift_tree::{Change, FileEntry, RelPath, Tree};

fn tree(path: &str, text: &str) -> Tree {
    [(
        RelPath::new(path).unwrap(),
        FileEntry::regular(text.as_bytes().to_vec()),
    )]
    .into_iter()
    .collect()
}

/// The plan entry and the written text of merging one file.
fn merge(path: &str, base: &str, ours: &str, theirs: &str) -> (FilePlan, String) {
    let outcome = merge_trees(
        &tree(path, base),
        &tree(path, theirs),
        &tree(path, ours),
        &MergeOptions::default(),
    );
    assert_eq!(outcome.files.len(), 1);
    let written = outcome
        .changes
        .iter()
        .find_map(|change| match change {
            Change::Write { entry, .. } => Some(String::from_utf8(entry.content.to_vec()).unwrap()),
            _ => None,
        })
        .unwrap_or_default();
    (outcome.files[0].clone(), written)
}

fn line_merge(base: &str, ours: &str, theirs: &str) -> uplift_merge::TextMerge {
    merge_text(base, ours, theirs, &TextOptions::default())
}

const APIS_BASE: &str = "\
import {
  ScmIntegrationsApi,
  scmIntegrationsApiRef,
} from '@backstage/integration-react';
import {
  AnyApiFactory,
  configApiRef,
  createApiFactory,
} from '@backstage/core-plugin-api';

export const apis: AnyApiFactory[] = [
  createApiFactory({
    api: scmIntegrationsApiRef,
    deps: { configApi: configApiRef },
    factory: ({ configApi }) => ScmIntegrationsApi.fromConfig(configApi),
  }),
];
";

/// The app rewrote the list (its own order, its own names).
const APIS_OURS: &str = "\
import {
  ScmIntegrationsApi,
  scmIntegrationsApiRef,
} from '@backstage/integration-react';
import {
  AnyApiFactory,
  githubAuthApiRef,
  discoveryApiRef,
  oauthRequestApiRef,
  errorApiRef,
  configApiRef,
  identityApiRef,
  createApiFactory,
} from '@backstage/core-plugin-api';
import { GithubAuth } from '@backstage/core-app-api';

export const apis: AnyApiFactory[] = [
  createApiFactory({
    api: scmIntegrationsApiRef,
    deps: { configApi: configApiRef },
    factory: ({ configApi }) => ScmIntegrationsApi.fromConfig(configApi),
  }),
  createApiFactory({
    api: githubAuthApiRef,
    deps: { discoveryApi: discoveryApiRef, oauthRequestApi: oauthRequestApiRef, configApi: configApiRef },
    factory: deps => GithubAuth.create(deps),
  }),
];
";

/// Upstream appended names after its own short list.
const APIS_THEIRS: &str = "\
import {
  ScmIntegrationsApi,
  scmIntegrationsApiRef,
} from '@backstage/integration-react';
import {
  AnyApiFactory,
  configApiRef,
  createApiFactory,
  discoveryApiRef,
  errorApiRef,
  fetchApiRef,
  identityApiRef,
  storageApiRef,
} from '@backstage/core-plugin-api';

export const apis: AnyApiFactory[] = [
  createApiFactory({
    api: scmIntegrationsApiRef,
    deps: { configApi: configApiRef },
    factory: ({ configApi }) => ScmIntegrationsApi.fromConfig(configApi),
  }),
];
";

#[test]
fn a_rewritten_import_list_next_to_an_append_merges_as_a_set() {
    // The line merge places upstream's appended lines after the app's: three names twice.
    let lines = line_merge(APIS_BASE, APIS_OURS, APIS_THEIRS);
    assert_eq!(lines.conflicts, 0, "{}", lines.content);
    assert_eq!(lines.content.matches("  discoveryApiRef,\n").count(), 2);

    let (plan, written) = merge(
        "packages/app/src/apis.ts",
        APIS_BASE,
        APIS_OURS,
        APIS_THEIRS,
    );
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    let expected_imports = "\
import {
  AnyApiFactory,
  githubAuthApiRef,
  discoveryApiRef,
  oauthRequestApiRef,
  errorApiRef,
  configApiRef,
  identityApiRef,
  createApiFactory,
  fetchApiRef,
  storageApiRef,
} from '@backstage/core-plugin-api';
import { GithubAuth } from '@backstage/core-app-api';
";
    assert!(written.contains(expected_imports), "{written}");
    for name in ["discoveryApiRef", "errorApiRef", "identityApiRef"] {
        assert_eq!(
            written.matches(&format!("  {name},\n")).count(),
            1,
            "{name}"
        );
    }
    // The rest of the file is the app's.
    assert!(written.ends_with(&APIS_OURS[APIS_OURS.find("\nexport").unwrap()..]));
    let reason = plan.reason.unwrap();
    assert!(
        reason.contains(
            "imports from '@backstage/core-plugin-api' merged as a set (your names in your order; added upstream's fetchApiRef, storageApiRef)"
        ),
        "{reason}"
    );
}

#[test]
fn a_name_upstream_removed_goes_and_type_only_imports_and_aliases_stay() {
    let base = "\
import { a, b } from 'm';
import type { T } from 'm';
import { x as y } from 'n';

y(a, b);
";
    let ours = "\
import { b, a, c } from 'm';
import type { T } from 'm';
import { x as y } from 'n';

y(a, b, c);
";
    let theirs = "\
import { a, d } from 'm';
import type { T, U } from 'm';
import { x as y, type Z } from 'n';

y(a, d);
";
    let (plan, written) = merge("src/x.ts", base, ours, theirs);
    // Upstream removed `b`, which the app reordered: the app's order, without `b`.
    assert_eq!(
        plan.action,
        Action::Conflict,
        "the body conflicts: {written}"
    );
    assert!(
        written.starts_with(
            "import { a, c, d } from 'm';\nimport type { T, U } from 'm';\nimport { x as y, type Z } from 'n';\n"
        ),
        "{written}"
    );
}

const INDEX_BASE: &str = "\
import { createBackend } from '@backstage/backend-defaults';

const backend = createBackend();

backend.add(import('@backstage/plugin-app-backend'));
backend.add(import('@backstage/plugin-proxy-backend'));

// auth plugin
backend.add(import('@backstage/plugin-auth-backend'));

backend.start();
";

#[test]
fn the_same_registration_added_at_two_places_lands_once() {
    // The app added the MCP actions plugin after the proxy; upstream adds it after a comment
    // further down.
    let ours = INDEX_BASE.replace(
        "backend.add(import('@backstage/plugin-proxy-backend'));\n",
        "backend.add(import('@backstage/plugin-proxy-backend'));\nbackend.add(import('@backstage/plugin-mcp-actions-backend'));\n",
    );
    let theirs = INDEX_BASE.replace(
        "backend.start();\n",
        "// mcp actions\nbackend.add(import('@backstage/plugin-mcp-actions-backend'));\n\nbackend.start();\n",
    );
    let lines = line_merge(INDEX_BASE, &ours, &theirs);
    assert_eq!(lines.conflicts, 0);
    assert_eq!(
        lines.content.matches("plugin-mcp-actions-backend").count(),
        2
    );

    let (plan, written) = merge("packages/backend/src/index.ts", INDEX_BASE, &ours, &theirs);
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    assert_eq!(
        written
            .matches("backend.add(import('@backstage/plugin-mcp-actions-backend'));")
            .count(),
        1,
        "{written}"
    );
    assert_eq!(
        written,
        INDEX_BASE.replace(
            "backend.add(import('@backstage/plugin-proxy-backend'));\n",
            "backend.add(import('@backstage/plugin-proxy-backend'));\nbackend.add(import('@backstage/plugin-mcp-actions-backend'));\n",
        ).replace("backend.start();\n", "// mcp actions\n\nbackend.start();\n")
    );
    let reason = plan.reason.unwrap();
    assert!(
        reason.contains("backend.add(import('@backstage/plugin-mcp-actions-backend')); was added on both sides: kept once (line 7), the copy at line 13 dropped"),
        "{reason}"
    );
}

#[test]
fn a_registration_written_differently_by_each_side_is_still_one() {
    // Prettier breaks a long call over lines; the app wrote it on one.
    let ours = INDEX_BASE.replace(
        "backend.start();\n",
        "backend.add(import('@backstage/plugin-scaffolder-backend-module-notifications'));\nbackend.start();\n",
    );
    let theirs = INDEX_BASE.replace(
        "// auth plugin\n",
        "backend.add(\n  import('@backstage/plugin-scaffolder-backend-module-notifications'),\n);\n\n// auth plugin\n",
    );
    let (plan, written) = merge("packages/backend/src/index.ts", INDEX_BASE, &ours, &theirs);
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    assert_eq!(
        written.matches("module-notifications").count(),
        1,
        "{written}"
    );
}

#[test]
fn both_adding_registrations_at_one_place_keeps_both() {
    let ours = INDEX_BASE.replace(
        "backend.start();\n",
        "backend.add(import('@acme/plugin-insights-backend'));\n\nbackend.start();\n",
    );
    let theirs = INDEX_BASE.replace(
        "backend.start();\n",
        "backend.add(import('@backstage/plugin-signals-backend'));\n\nbackend.start();\n",
    );
    assert_eq!(line_merge(INDEX_BASE, &ours, &theirs).conflicts, 1);
    let (plan, written) = merge("packages/backend/src/index.ts", INDEX_BASE, &ours, &theirs);
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    assert!(
        written.ends_with(
            "backend.add(import('@acme/plugin-insights-backend'));\n\nbackend.add(import('@backstage/plugin-signals-backend'));\n\nbackend.start();\n"
        ),
        "{written}"
    );
    assert!(plan.reason.unwrap().contains(
        "both sides added registrations at one place (1 place): yours first, then upstream's"
    ));
}

const APP_BASE: &str = "\
import { Route } from 'react-router-dom';
import { CatalogIndexPage } from '@backstage/plugin-catalog';
import { UserSettingsPage } from '@backstage/plugin-user-settings';

const routes = (
  <FlatRoutes>
    <Route path=\"/catalog\" element={<CatalogIndexPage />} />
    <Route path=\"/settings\" element={<UserSettingsPage />} />
  </FlatRoutes>
);

export default routes;
";

#[test]
fn a_jsx_route_added_by_both_lands_once() {
    let ours = APP_BASE
        .replace(
            "import { UserSettingsPage }",
            "import { NotificationsPage } from '@backstage/plugin-notifications';\nimport { UserSettingsPage }",
        )
        .replace(
            "    <Route path=\"/catalog\" element={<CatalogIndexPage />} />\n",
            "    <Route path=\"/catalog\" element={<CatalogIndexPage />} />\n    <Route path=\"/notifications\" element={<NotificationsPage />} />\n",
        );
    let theirs = APP_BASE
        .replace(
            "import { UserSettingsPage } from '@backstage/plugin-user-settings';\n",
            "import { UserSettingsPage } from '@backstage/plugin-user-settings';\nimport { NotificationsPage } from '@backstage/plugin-notifications';\n",
        )
        .replace(
            "  </FlatRoutes>",
            "    <Route path=\"/notifications\" element={<NotificationsPage />} />\n  </FlatRoutes>",
        );
    let lines = line_merge(APP_BASE, &ours, &theirs);
    assert_eq!(lines.conflicts, 0, "{}", lines.content);
    assert_eq!(lines.content.matches("NotificationsPage").count(), 4);

    let (plan, written) = merge("packages/app/src/App.tsx", APP_BASE, &ours, &theirs);
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    assert_eq!(written, ours, "the app's placement of both, once each");
}

#[test]
fn a_route_both_added_with_different_elements_is_a_conflict() {
    let ours = APP_BASE.replace(
        "  </FlatRoutes>",
        "    <Route path=\"/search\" element={<AcmeSearch />} />\n  </FlatRoutes>",
    );
    let theirs = APP_BASE.replace(
        "    <Route path=\"/catalog\"",
        "    <Route path=\"/search\" element={<SearchPage />} />\n    <Route path=\"/catalog\"",
    );
    assert_eq!(line_merge(APP_BASE, &ours, &theirs).conflicts, 0);
    let (plan, _) = merge("packages/app/src/App.tsx", APP_BASE, &ours, &theirs);
    assert_eq!(plan.action, Action::Conflict);
    assert_eq!(
        plan.reason.as_deref(),
        Some(
            "<Route path='/search'> would be registered twice in <FlatRoutes> (lines 7 and 10), which neither side does"
        )
    );
}

#[test]
fn a_clean_line_merge_that_does_not_parse_is_a_conflict() {
    // The app wrapped a line in a class; upstream turned that line into a call. Each is valid,
    // the line merge (an insertion at the edges of a changed line) is clean, the result is not.
    let base = "a();\nb;\nc();\n";
    let ours = "a();\nclass C {\nb;\n}\nc();\n";
    let theirs = "a();\nb(1);\nc();\n";
    let lines = line_merge(base, ours, theirs);
    assert_eq!(lines.conflicts, 0);
    assert_eq!(lines.content, "a();\nclass C {\nb(1);\n}\nc();\n");
    let (plan, _) = merge("src/a.js", base, ours, theirs);
    assert_eq!(plan.action, Action::Conflict);
    assert_eq!(
        plan.reason.as_deref(),
        Some(
            "the merged file does not parse as TSX/JavaScript (line 3); 1 insertion next to upstream changes placed without conflict"
        )
    );
}

#[test]
fn an_input_that_does_not_parse_does_not_block_a_merge() {
    let base = "a(\n\nb();\n";
    let ours = "a(\n\nb();\nc();\n";
    let theirs = "x();\na(\n\nb();\n";
    let (plan, written) = merge("src/a.ts", base, ours, theirs);
    assert_eq!(plan.action, Action::Merge, "{plan:?}");
    assert_eq!(written, "x();\na(\n\nb();\nc();\n");
}

#[test]
fn features_entries_both_added_land_once() {
    let base = "\
import { createApp } from '@backstage/frontend-defaults';
import catalogPlugin from '@backstage/plugin-catalog/alpha';

export default createApp({
  features: [
    catalogPlugin,
  ],
});
";
    let ours = base
        .replace(
            "import catalogPlugin",
            "import { navModule } from './modules/nav';\nimport catalogPlugin",
        )
        .replace(
            "    catalogPlugin,\n",
            "    navModule,\n    catalogPlugin,\n",
        );
    let theirs = base
        .replace(
            "import catalogPlugin from '@backstage/plugin-catalog/alpha';\n",
            "import catalogPlugin from '@backstage/plugin-catalog/alpha';\nimport { navModule } from './modules/nav';\n",
        )
        .replace("    catalogPlugin,\n", "    catalogPlugin,\n    navModule,\n");
    let (plan, written) = merge("packages/app/src/App.tsx", base, &ours, &theirs);
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    assert_eq!(written, ours);
}

#[test]
fn a_registration_next_to_upstream_s_new_comment_keeps_both() {
    // 1.42.0 opened a section with a blank line and a comment right where apps add plugins.
    let base = "\
backend.add(import('@backstage/plugin-proxy-backend'));
backend.add(import('@backstage/plugin-scaffolder-backend'));
";
    let ours = "\
backend.add(import('@backstage/plugin-proxy-backend'));
backend.add(import('@acme/plugin-insights-backend'));
backend.add(import('@backstage/plugin-scaffolder-backend'));
";
    let theirs = "\
backend.add(import('@backstage/plugin-proxy-backend'));

// scaffolder plugin
backend.add(import('@backstage/plugin-scaffolder-backend'));
";
    assert_eq!(line_merge(base, ours, theirs).conflicts, 1);
    let (plan, written) = merge("packages/backend/src/index.ts", base, ours, theirs);
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    assert_eq!(
        written,
        "\
backend.add(import('@backstage/plugin-proxy-backend'));
backend.add(import('@acme/plugin-insights-backend'));

// scaffolder plugin
backend.add(import('@backstage/plugin-scaffolder-backend'));
"
    );
}

#[test]
fn a_module_only_upstream_imports_goes_after_the_one_it_follows_upstream() {
    let base = "\
import { a } from 'one';
import { b } from 'two';

a(b);
";
    // The app added a module of its own and changed the body; upstream added `three` after
    // `one`, removed `two` and changed the same body line.
    let ours = "\
import { a } from 'one';
import { b } from 'two';
import { mine } from './mine';

a(b, mine);
";
    let theirs = "\
import { a } from 'one';
import { c } from 'three';

a(c);
";
    let (plan, written) = merge("src/x.ts", base, ours, theirs);
    assert_eq!(plan.action, Action::Conflict, "the body conflicts");
    assert!(
        written.starts_with(
            "import { a } from 'one';\nimport { c } from 'three';\nimport { mine } from './mine';\n\n<<<<<<< app\n"
        ),
        "{written}"
    );
    assert!(plan.reason.unwrap().starts_with("1 conflicting region"));
}

#[test]
fn a_one_line_import_grown_past_80_columns_goes_one_name_per_line() {
    let base = "import { alpha, beta } from '@backstage/core-components';\n\nuse(alpha, beta);\n";
    let ours = "import { beta, alpha, gammaGamma } from '@backstage/core-components';\n\nuse(alpha, beta);\nuse(gammaGamma);\n";
    let theirs = "import { alpha, beta, deltaDelta } from '@backstage/core-components';\n\nuse(alpha, beta);\n";
    assert_eq!(line_merge(base, ours, theirs).conflicts, 1);
    let (plan, written) = merge("src/x.tsx", base, ours, theirs);
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    assert_eq!(
        written,
        "import {\n  beta,\n  alpha,\n  gammaGamma,\n  deltaDelta,\n} from '@backstage/core-components';\n\nuse(alpha, beta);\nuse(gammaGamma);\n"
    );
    assert!(plan.reason.unwrap().starts_with(
        "merged by syntax (TSX/JavaScript): imports as sets per module, registrations once; imports from '@backstage/core-components' merged as a set (your names in your order; added upstream's deltaDelta)"
    ));
}

#[test]
fn imports_written_anew_end_their_lines_as_the_app_does() {
    let crlf = |text: &str| text.replace('\n', "\r\n");
    let (plan, written) = merge(
        "src/apis.ts",
        &crlf(APIS_BASE),
        &crlf(APIS_OURS),
        &crlf(APIS_THEIRS),
    );
    assert_eq!(plan.action, Action::Merge, "{plan:?}\n{written}");
    assert!(
        written.contains("  fetchApiRef,\r\n  storageApiRef,\r\n} from"),
        "{written:?}"
    );
    assert_eq!(
        written.matches('\n').count(),
        written.matches("\r\n").count()
    );
}
