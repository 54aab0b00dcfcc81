//! search: tag listing on a registry, and the Docker Hub search API against a fake hub.

use e2e::{show, stdout, ServerConfig, TestEnv, TestServer};

#[test]
fn list_tags() {
    let t = TestEnv::new();
    let out = t.ud_ok(&[
        "search",
        "--list-tags",
        &format!("{}/library/busybox", t.fx.registry()),
    ]);
    let tags: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        tags.contains(&"latest") && tags.contains(&"oci"),
        "expected the tags latest and oci, got:\n{out}"
    );
    assert!(
        !t.repos().join(t.fx.registry()).exists(),
        "expected search to store nothing"
    );
}

#[test]
fn list_tags_unknown_repository() {
    let t = TestEnv::new();
    let err = t.ud_fail(&[
        "search",
        "--list-tags",
        &format!("{}/library/nosuchimage", t.fx.registry()),
    ]);
    assert!(err.contains("Error:"), "expected an Error: line:\n{err}");
}

fn fake_hub() -> TestServer {
    let body = serde_json::json!({
        "count": 2,
        "results": [
            {"repo_name": "busybox", "short_description": "Busybox base image.",
             "star_count": 3456, "is_official": true},
            {"repo_name": "someone/busybox-extra", "short_description": "An extra\nbusybox",
             "star_count": 7, "is_official": false}
        ]
    });
    TestServer::start(ServerConfig {
        routes: vec![(
            "/v2/search/repositories".into(),
            200,
            "application/json".into(),
            body.to_string().into_bytes(),
        )],
        ..Default::default()
    })
}

#[test]
fn search_fake_hub() {
    let t = TestEnv::new();
    let hub = fake_hub();
    let out = t.ud_ok(&["search", &format!("--index={}", hub.url()), "busybox"]);
    let lines: Vec<&str> = out.lines().collect();
    let head = lines.first().copied().unwrap_or("");
    for col in ["NAME", "OFFICIAL", "DESCRIPTION", "STARS"] {
        assert!(
            head.contains(col),
            "expected the header to have {col}:\n{out}"
        );
    }
    let row = lines
        .iter()
        .find(|l| l.starts_with("busybox "))
        .unwrap_or_else(|| panic!("expected a row for busybox:\n{out}"));
    assert!(
        row.contains("[OK]")
            && row.trim_end().ends_with("3456")
            && row.contains("Busybox base image."),
        "expected busybox marked official with 3456 stars:\n{out}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with("someone/busybox-extra"))
        .unwrap_or_else(|| panic!("expected a row for someone/busybox-extra:\n{out}"));
    assert!(
        !row.contains("[OK]") && row.trim_end().ends_with('7'),
        "expected a non-official row with 7 stars:\n{out}"
    );
    assert_eq!(
        lines.len(),
        3,
        "expected a header and two rows (newline in description flattened):\n{out}"
    );
    let reqs = hub.requests();
    let q = reqs
        .iter()
        .find(|r| r.path.starts_with("/v2/search/repositories"))
        .expect("a search request");
    assert!(
        q.path.contains("query=busybox"),
        "expected the query passed as query=busybox, got {}",
        q.path
    );
}

#[test]
fn search_index_from_environment() {
    let t = TestEnv::new();
    let hub = fake_hub();
    let o = t.ud_env(&[("UDOCKER_INDEX", &hub.url())], &["search", "busybox"]);
    assert!(
        o.status.success(),
        "search with UDOCKER_INDEX\n{}",
        show(&o)
    );
    assert!(
        stdout(&o).contains("someone/busybox-extra"),
        "expected results from UDOCKER_INDEX:\n{}",
        stdout(&o)
    );
}
