//! Failures: corrupt blobs, interrupted and resumed downloads, concurrency, bad references,
//! unreachable registries.

use e2e::{show, stderr, stdout, wait_child, wait_until, Cut, ServerConfig, TestEnv, TestServer};
use std::fs;
use std::time::{Duration, Instant};

fn busybox_layer(t: &TestEnv) -> String {
    t.fx.list("BUSYBOX_LAYERS")[0].clone()
}

#[test]
fn corrupted_blob_is_refused() {
    let t = TestEnv::new();
    let layer = busybox_layer(&t);
    let srv = TestServer::start(ServerConfig {
        upstream: Some(t.fx.registry()),
        corrupt_blob: Some(layer.clone()),
        ..Default::default()
    });
    let img = format!("{}/library/busybox:latest", srv.addr);
    let o = t.ud(&["pull", &img]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected rc 1 for a corrupted blob\n{}",
        show(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains(&layer),
        "expected the error to name the digest {layer}:\n{err}"
    );
    assert!(
        srv.requests().iter().any(|r| r.path.ends_with(&layer)),
        "expected the blob to have gone through the test server"
    );
    assert!(
        !t.layer(&layer).exists(),
        "expected no layers/{layer} after a digest mismatch"
    );
    let partial = t.partial_dir().join(&layer);
    assert!(
        !partial.exists(),
        "expected the corrupt partial download discarded"
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );
    t.assert_repo_consistent();
}

#[test]
fn short_body_is_resumed_with_range() {
    let t = TestEnv::new();
    let layer = busybox_layer(&t);
    let srv = TestServer::start(ServerConfig {
        upstream: Some(t.fx.registry()),
        cut_blob: Some((layer.clone(), 300_000, Cut::Close)),
        cut_times: 1,
        ..Default::default()
    });
    let img = format!("{}/library/busybox:latest", srv.addr);
    let o = t.ud(&["pull", &img]);
    assert!(
        o.status.success(),
        "expected a pull to survive a cut connection\n{}",
        show(&o)
    );
    assert!(
        srv.cut_reached(),
        "expected the test server to have cut the blob"
    );
    let ranges: Vec<String> = srv
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&layer))
        .filter_map(|r| r.header("Range").map(str::to_string))
        .collect();
    assert!(
        ranges.iter().any(|r| r == "bytes=300000-"),
        "expected a `Range: bytes=300000-` request after the cut, saw {ranges:?}"
    );
    t.assert_repo_consistent();
    t.ud_ok(&["verify", &img]);
}

#[test]
fn killed_pull_resumes_in_next_process() {
    let t = TestEnv::new();
    let layer = busybox_layer(&t);
    // The layer's size, to cut it in the middle.
    let size = {
        let r = e2e::http_request(
            &t.fx.registry(),
            "HEAD",
            &format!("/v2/library/busybox/blobs/{layer}"),
            &[],
        );
        r.header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok())
            .expect("blob Content-Length")
    };
    let half = size / 2;
    let stall = TestServer::start(ServerConfig {
        upstream: Some(t.fx.registry()),
        cut_blob: Some((layer.clone(), half, Cut::Stall)),
        cut_times: 100,
        ..Default::default()
    });
    let img = format!("{}/library/busybox:latest", stall.addr);
    let mut ch = t.spawn(&["pull", &img]);
    let partial = t.partial_dir().join(&layer);
    let got_half = wait_until(Duration::from_secs(20), || {
        stall.cut_reached() && fs::metadata(&partial).is_ok_and(|m| m.len() as usize >= half)
    });
    let _ = ch.kill();
    let o = ch.wait_with_output().expect("wait");
    assert!(
        got_half,
        "expected the partial download to reach {half} bytes before the stall\n{}",
        show(&o)
    );
    assert!(
        !o.status.success(),
        "expected the killed pull not to succeed"
    );
    assert_eq!(
        fs::metadata(&partial).map(|m| m.len() as usize).ok(),
        Some(half),
        "expected layers/.partial/{layer} kept with the {half} bytes received"
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir after the kill: {:?}",
        t.tag_dirs()
    );
    assert!(
        !t.layer(&layer).exists(),
        "expected no finished layer after the kill"
    );
    drop(stall);

    let good = TestServer::proxy(&t.fx.registry());
    let img2 = format!("{}/library/busybox:latest", good.addr);
    let o = t.ud(&["pull", &img2]);
    assert!(
        o.status.success(),
        "expected the second pull to complete\n{}",
        show(&o)
    );
    let ranges: Vec<String> = good
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&layer))
        .filter_map(|r| r.header("Range").map(str::to_string))
        .collect();
    assert!(
        ranges.contains(&format!("bytes={half}-")),
        "expected the new process to resume with `Range: bytes={half}-`, saw {ranges:?}"
    );
    assert!(t.layer(&layer).is_file(), "expected the layer stored");
    assert!(
        !partial.exists(),
        "expected the partial file gone after completion"
    );
    t.assert_repo_consistent();
    t.ud_ok(&["verify", &img2]);
}

#[test]
fn concurrent_pulls_different_images() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let a = t.spawn(&["pull", &format!("{reg}/test/multilayer:latest")]);
    let b = t.spawn(&["pull", &format!("{reg}/test/many:latest")]);
    let c = t.spawn(&["pull", &format!("{reg}/library/busybox:latest")]);
    for (ch, what) in [(a, "multilayer"), (b, "many"), (c, "busybox")] {
        let o = wait_child(ch, Duration::from_secs(120), what);
        assert!(
            o.status.success(),
            "expected the concurrent pull of {what} to succeed\n{}",
            show(&o)
        );
    }
    assert_eq!(
        t.tag_dirs().len(),
        3,
        "expected three images: {:?}",
        t.tag_dirs()
    );
    t.assert_repo_consistent();
}

#[test]
fn concurrent_pulls_same_image() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let img = format!("{reg}/test/many:latest");
    let kids: Vec<_> = (0..3).map(|_| t.spawn(&["pull", &img])).collect();
    for (i, ch) in kids.into_iter().enumerate() {
        let o = wait_child(ch, Duration::from_secs(120), "concurrent pull");
        assert!(
            o.status.success(),
            "expected concurrent pull #{i} to succeed\n{}",
            show(&o)
        );
    }
    assert_eq!(
        t.tag_dirs().len(),
        1,
        "expected one image: {:?}",
        t.tag_dirs()
    );
    let n = t.fx.list("MANY_LAYERS").len() + 1;
    assert_eq!(
        t.layer_files().len(),
        n,
        "expected each blob stored once ({n} files): {:?}",
        t.layer_files()
    );
    t.assert_repo_consistent();
    t.ud_ok(&["verify", &img]);
}

#[test]
fn unknown_image_and_tag() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let err = t.ud_fail(&["pull", &format!("{reg}/library/nosuchimage:latest")]);
    assert!(
        err.to_lowercase().contains("not found") || err.contains("404") || err.contains("unknown"),
        "expected a not-found error for an unknown image:\n{err}"
    );
    let err = t.ud_fail(&["pull", &format!("{reg}/library/busybox:nosuchtag")]);
    assert!(
        err.contains("nosuchtag"),
        "expected the error to name the missing tag:\n{err}"
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );
    assert!(
        t.layer_files().is_empty(),
        "expected no layers: {:?}",
        t.layer_files()
    );
}

#[test]
fn bad_references_do_not_touch_network() {
    let t = TestEnv::new();
    let srv = TestServer::start(ServerConfig::default());
    let reg_opt = format!("--registry={}", srv.url());
    for bad in ["UPPER", "a b", "img:", "img@sha256:xyz", ":tag", "a//b"] {
        let o = t.ud(&["pull", &reg_opt, bad]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "expected rc 1 for the bad reference {bad:?}\n{}",
            show(&o)
        );
        assert!(
            stderr(&o).contains("Error:"),
            "expected an Error: line for {bad:?}:\n{}",
            stderr(&o)
        );
    }
    assert!(
        srv.requests().is_empty() && srv.garbage_connections() == 0,
        "expected no network traffic for invalid references, saw {:?}",
        srv.requests()
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );
}

#[test]
fn unreachable_registry_fails_quickly() {
    let t = TestEnv::new();
    let start = Instant::now();
    let err = t.ud_fail(&["pull", "127.0.0.1:1/x"]);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "expected an unreachable registry to fail quickly, took {took:?}"
    );
    assert!(
        err.contains("127.0.0.1:1"),
        "expected the error to name the registry:\n{err}"
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );
}

#[test]
fn registry_errors_leave_no_tag() {
    // A registry whose blobs all answer 500: the pull fails after its retries, cleanly.
    let t = TestEnv::new();
    let layer = busybox_layer(&t);
    let srv = TestServer::start(ServerConfig {
        upstream: Some(t.fx.registry()),
        routes: vec![(
            format!("/v2/library/busybox/blobs/{layer}"),
            500,
            "text/plain".into(),
            b"boom".to_vec(),
        )],
        ..Default::default()
    });
    let o = t.ud(&["pull", &format!("{}/library/busybox:latest", srv.addr)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected rc 1 when a blob keeps failing\n{}",
        show(&o)
    );
    let hits = srv
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&layer))
        .count();
    assert!(
        (2..=10).contains(&hits),
        "expected a bounded number of retries (2..=10) of the failing blob, saw {hits}"
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );
    assert!(!t.layer(&layer).exists(), "expected no layer stored");
    t.assert_repo_consistent();
}

#[test]
fn pull_through_http_proxy() {
    // The test server as a forward proxy: requests arrive in absolute form.
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let px = TestServer::proxy(&reg);
    let o = t.ud(&[
        "pull",
        &format!("--httpproxy={}", px.url()),
        &format!("{reg}/library/busybox:latest"),
    ]);
    assert!(
        o.status.success(),
        "expected a pull through --httpproxy\n{}",
        show(&o)
    );
    let layer = busybox_layer(&t);
    assert!(
        px.requests()
            .iter()
            .any(|r| r.path == format!("http://{reg}/v2/library/busybox/blobs/{layer}")),
        "expected the blob fetched through the proxy, saw {:?}",
        px.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(
        stdout(&o).is_empty(),
        "expected nothing on stdout from pull:\n{}",
        stdout(&o)
    );
    t.assert_repo_consistent();
}

#[test]
fn proxy_from_environment_and_no_proxy() {
    // https_proxy/http_proxy from the environment are used; no_proxy bypasses them.
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let px = TestServer::proxy(&reg);
    let img = format!("{reg}/library/busybox:latest");
    let o = t.ud_env(&[("http_proxy", px.url().as_str())], &["pull", &img]);
    assert!(
        o.status.success(),
        "expected a pull through $http_proxy\n{}",
        show(&o)
    );
    let through = px.requests().len();
    assert!(
        through > 0,
        "expected requests through the proxy from $http_proxy"
    );
    let o = t.ud_env(
        &[("http_proxy", px.url().as_str()), ("no_proxy", "127.0.0.1")],
        &["pull", &img],
    );
    assert!(
        o.status.success(),
        "expected a direct pull with no_proxy\n{}",
        show(&o)
    );
    assert_eq!(
        px.requests().len(),
        through,
        "expected no_proxy=127.0.0.1 to bypass the proxy"
    );
    t.assert_repo_consistent();
}
