//! Token and Basic authentication, the keystore, login/logout, TLS.

use e2e::{b64, mode, show, stderr, TestEnv};
use std::fs;

fn keystore(t: &TestEnv) -> serde_json::Value {
    let p = t.udir.join("keystore");
    let text = fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("expected a keystore at {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("expected keystore JSON: {e}\n{text}"))
}

#[test]
fn token_registry_anonymous_pull() {
    let t = TestEnv::new();
    let img = t.fx.get("TOKEN_BUSYBOX_REF");
    t.ud_ok(&["pull", &img]);
    assert_eq!(
        t.tag_dirs().len(),
        1,
        "expected one image: {:?}",
        t.tag_dirs()
    );
    t.assert_repo_consistent();
}

#[test]
fn token_registry_private_needs_login() {
    let t = TestEnv::new();
    let img = t.fx.get("TOKEN_PRIVATE_BUSYBOX_REF");
    let reg = t.fx.get("REGISTRY_TOKEN");
    let o = t.ud(&["pull", &img]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected rc 1 for an anonymous private pull\n{}",
        show(&o)
    );
    let err = stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("Error:")).count(),
        1,
        "expected exactly one Error: line:\n{err}"
    );
    assert!(
        !err.contains("panicked"),
        "expected a clean error, not a panic:\n{err}"
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );

    // Wrong password: still refused, nothing stored in repos.
    t.ud_ok(&[
        "login",
        "--username=testuser",
        "--password=wrongpass",
        &format!("--registry=http://{reg}"),
    ]);
    let o = t.ud(&["pull", &img]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected rc 1 with a wrong password\n{}",
        show(&o)
    );
    let err = stderr(&o).to_lowercase();
    assert!(
        err.contains("credentials") || err.contains("denied") || err.contains("unauthorized"),
        "expected a wrong-credentials error:\n{err}"
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );
    assert!(
        t.layer_files().is_empty(),
        "expected no layers fetched without access: {:?}",
        t.layer_files()
    );

    // Right password (login replaces the entry).
    t.ud_ok(&[
        "login",
        "--username=testuser",
        "--password=testpass",
        &format!("--registry=http://{reg}"),
    ]);
    t.ud_ok(&["pull", &img]);
    assert_eq!(t.tag_dirs().len(), 1, "expected the private image pulled");
    t.assert_repo_consistent();
}

#[test]
fn keystore_format_and_logout() {
    let t = TestEnv::new();
    let reg = t.fx.get("REGISTRY_TOKEN");
    let url = format!("http://{reg}");
    t.ud_ok(&[
        "login",
        "--username=testuser",
        "--password=testpass",
        &format!("--registry={url}"),
    ]);
    let p = t.udir.join("keystore");
    assert_eq!(mode(&p), 0o600, "expected the keystore to be mode 0600");
    let ks = keystore(&t);
    let obj = ks.as_object().expect("keystore is a JSON object");
    assert_eq!(obj.len(), 1, "expected one entry: {ks}");
    let (k, v) = obj.iter().next().unwrap();
    assert!(
        k.contains(&reg),
        "expected the entry keyed by the registry url, got {k}"
    );
    assert_eq!(
        v["auth"].as_str(),
        Some(b64(b"testuser:testpass").as_str()),
        "expected auth = base64(user:pass): {ks}"
    );
    assert!(v.get("email").is_some(), "expected an email field: {ks}");
    // A second registry.
    t.ud_ok(&[
        "login",
        "--username=u2",
        "--password=p2",
        "--registry=http://127.0.0.1:5001",
    ]);
    assert_eq!(
        keystore(&t).as_object().unwrap().len(),
        2,
        "expected two entries"
    );
    assert_eq!(mode(&p), 0o600, "expected mode 0600 kept after rewrite");

    t.ud_ok(&["logout", &format!("--registry={url}")]);
    let ks = keystore(&t);
    assert!(
        !ks.as_object().unwrap().keys().any(|k| k.contains(&reg)),
        "expected logout to remove {url}: {ks}"
    );
    assert_eq!(
        ks.as_object().unwrap().len(),
        1,
        "expected the other entry kept: {ks}"
    );

    t.ud_ok(&["logout", "-a"]);
    assert!(
        !p.exists(),
        "expected logout -a to remove the keystore file"
    );
}

#[test]
fn login_password_stdin() {
    let t = TestEnv::new();
    let reg = t.fx.get("REGISTRY_TOKEN");
    let o = t.ud_with_stdin(
        b"testpass\n",
        &[
            "login",
            "--username=testuser",
            "--password-stdin",
            &format!("--registry=http://{reg}"),
        ],
    );
    assert!(o.status.success(), "login --password-stdin\n{}", show(&o));
    let ks = keystore(&t);
    let v = ks
        .as_object()
        .unwrap()
        .values()
        .next()
        .expect("an entry")
        .clone();
    assert_eq!(
        v["auth"].as_str(),
        Some(b64(b"testuser:testpass").as_str()),
        "expected the password read from stdin (without newline): {ks}"
    );
    t.ud_ok(&["pull", &t.fx.get("TOKEN_PRIVATE_BUSYBOX_REF")]);
    assert_eq!(t.tag_dirs().len(), 1, "expected the private image pulled");
}

#[test]
fn basic_auth_registry() {
    let t = TestEnv::new();
    let img = t.fx.get("BASIC_BUSYBOX_REF");
    let reg = t.fx.get("REGISTRY_BASIC");
    let scheme =
        t.fx.opt("REGISTRY_BASIC_SCHEME")
            .unwrap_or_else(|| "http".into());
    let o = t.ud(&["pull", &img]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected rc 1 without credentials\n{}",
        show(&o)
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );
    t.ud_ok(&[
        "login",
        &format!("--username={}", t.fx.get("BASIC_USER")),
        &format!("--password={}", t.fx.get("BASIC_PASS")),
        &format!("--registry={scheme}://{reg}"),
    ]);
    t.ud_ok(&["pull", &img]);
    assert_eq!(
        t.tag_dirs().len(),
        1,
        "expected the image pulled with Basic auth"
    );
    t.assert_repo_consistent();

    // Wrong password.
    let t2 = TestEnv::new();
    t2.ud_ok(&[
        "login",
        "--username=testuser",
        "--password=nope",
        &format!("--registry={scheme}://{reg}"),
    ]);
    let o = t2.ud(&["pull", &img]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected rc 1 with a wrong password\n{}",
        show(&o)
    );
    let err = stderr(&o).to_lowercase();
    assert!(
        err.contains("credentials") || err.contains("denied"),
        "expected a wrong-credentials error:\n{err}"
    );
    assert!(t2.tag_dirs().is_empty(), "expected no tag dir");
}

#[test]
fn tls_registry() {
    let t = TestEnv::new();
    let img = t.fx.get("TLS_BUSYBOX_REF");
    let ca = t.fx.get("FIX_CA");
    let o = t.ud(&["pull", &img]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected rc 1 without the CA\n{}",
        show(&o)
    );
    let err = stderr(&o).to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("tls") || err.contains("issuer"),
        "expected a certificate error:\n{err}"
    );
    assert!(
        t.tag_dirs().is_empty(),
        "expected no tag dir: {:?}",
        t.tag_dirs()
    );

    let o = t.ud_env(&[("SSL_CERT_FILE", &ca)], &["pull", &img]);
    assert!(
        o.status.success(),
        "expected a pull with SSL_CERT_FILE=$FIX_CA to work\n{}",
        show(&o)
    );
    assert_eq!(t.tag_dirs().len(), 1);
    t.assert_repo_consistent();

    let t2 = TestEnv::new();
    t2.ud_ok(&["--insecure", "pull", &img]);
    assert_eq!(t2.tag_dirs().len(), 1, "expected --insecure to pull");
    t2.assert_repo_consistent();
}

#[test]
fn keystore_readable_by_others_is_refused() {
    let t = TestEnv::new();
    let reg = t.fx.get("REGISTRY_TOKEN");
    t.ud_ok(&[
        "login",
        "--username=testuser",
        "--password=testpass",
        &format!("--registry=http://{reg}"),
    ]);
    let ks = t.udir.join("keystore");
    let o = t.sh_as_user(&format!("chmod 0644 '{}'", ks.display()));
    assert!(o.status.success(), "chmod keystore\n{}", show(&o));
    let o = t.ud(&["pull", &t.fx.get("TOKEN_PRIVATE_BUSYBOX_REF")]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected a keystore readable by others to be refused\n{}",
        show(&o)
    );
    assert!(
        stderr(&o).contains("keystore"),
        "expected the error to name the keystore:\n{}",
        stderr(&o)
    );
    assert!(t.tag_dirs().is_empty(), "expected no tag dir");
}

#[test]
fn list_tags_with_token_auth() {
    let t = TestEnv::new();
    let reg = t.fx.get("REGISTRY_TOKEN");
    let out = t.ud_ok(&["search", "--list-tags", &format!("{reg}/library/busybox")]);
    assert!(
        out.lines().any(|l| l.trim() == "latest"),
        "expected anonymous tag listing on the token registry:\n{out}"
    );
    t.ud_fail(&["search", "--list-tags", &format!("{reg}/private/busybox")]);
    t.ud_ok(&[
        "login",
        "--username=testuser",
        "--password=testpass",
        &format!("--registry=http://{reg}"),
    ]);
    let out = t.ud_ok(&["search", "--list-tags", &format!("{reg}/private/busybox")]);
    assert!(
        out.lines().any(|l| l.trim() == "latest"),
        "expected the private tags after login:\n{out}"
    );
}
