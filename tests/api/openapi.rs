//! `openapi.yaml` describes exactly the routes the server registers: a route added to one and not the
//! other fails here.

use std::collections::BTreeSet;

/// (method, path) pairs under `paths:` of the spec, read from its layout (two-space path keys, four-space
/// method keys), which the file keeps.
fn spec_routes() -> BTreeSet<(String, String)> {
    let spec = threadcart::http::OPENAPI_YAML;
    let mut routes = BTreeSet::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in spec.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            current = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(path) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            current = Some(format!("/{path}"));
        } else if let (Some(path), Some(key)) = (&current, line.strip_prefix("    ")) {
            let key = key.trim_end().trim_end_matches(':');
            if ["get", "post", "put", "patch", "delete", "options"].contains(&key) {
                routes.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

fn app_routes() -> BTreeSet<(String, String)> {
    threadcart::http::route_table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect()
}

#[test]
fn every_route_of_the_app_is_in_openapi_yaml() {
    let missing: Vec<_> = app_routes().difference(&spec_routes()).cloned().collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.yaml: {missing:?}"
    );
}

#[test]
fn every_route_in_openapi_yaml_exists_in_the_app() {
    let extra: Vec<_> = spec_routes().difference(&app_routes()).cloned().collect();
    assert!(
        extra.is_empty(),
        "openapi.yaml describes routes the app lacks: {extra:?}"
    );
}

#[test]
fn the_spec_reader_finds_the_routes_it_should() {
    let spec = spec_routes();
    assert!(spec.contains(&("POST".into(), "/v1/auth/token".into())));
    assert!(
        spec.len() >= 20,
        "only {} routes read: has the layout changed?",
        spec.len()
    );
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |backend: &str| -> BTreeSet<String> {
        std::fs::read_dir(format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

#[test]
fn every_problem_code_the_server_answers_is_documented_in_openapi_yaml() {
    use threadcart::error::ErrorCode;
    let spec = threadcart::http::OPENAPI_YAML;
    let undocumented: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        // A dev-mode route's code: dev routes are not part of the API.
        .filter(|c| *c != "webhook_refused")
        .filter(|c| !spec.contains(&format!("`{c}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "codes missing from openapi.yaml: {undocumented:?}"
    );
    let mut codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), ErrorCode::ALL.len(), "every code is distinct");
}
