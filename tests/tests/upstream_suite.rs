//! udocker 1.3's own functional suite (`utils/udocker_test.sh` T001–T053 and the P1/P2 rows of
//! `udocker_test-run.sh`, `spec/udocker.md` §8), ported to our loopback registry and images:
//! `ubuntu:22.04` → `library/debian:bookworm`, `centos7.tar` (docker save) → the fixtures'
//! docker-archive, `centos7-cont.tar` (docker export) → an export made here, `python:3-slim` and
//! `redis` → images of the local registry. Each step is named after its upstream test id and
//! expects upstream's result (rc 0, or rc != 0 where upstream's `result_inv` does).

use e2e::*;

struct Suite {
    t: TestEnv,
}

impl Suite {
    fn ok(&self, id: &str, args: &[&str]) -> String {
        let o = self.t.ud(args);
        assert!(
            o.status.success(),
            "{id}: `udocker {}` failed\n{}",
            args.join(" "),
            show(&o)
        );
        stdout(&o)
    }

    fn inv(&self, id: &str, args: &[&str]) {
        let o = self.t.ud(args);
        assert!(
            !o.status.success(),
            "{id}: `udocker {}` was expected to fail\n{}",
            args.join(" "),
            show(&o)
        );
    }
}

#[test]
fn udocker_test_sh_t001_to_t053() {
    let s = Suite { t: TestEnv::new() };
    let reg = s.t.fx.registry();
    let img = format!("{reg}/library/debian:bookworm");
    s.ok("T001", &["install"]);
    s.ok("T002", &["install", "--force"]);
    s.ok("T003", &[]);
    s.ok("T004", &["help"]);
    s.ok("T005", &["-h"]);
    s.ok("T006", &["showconf"]);
    s.ok("T007", &["version"]);
    s.ok("T008", &["-D", "version"]);
    s.ok("T009", &["--quiet", "version"]);
    s.ok("T010", &["-q", "version"]);
    s.ok("T011", &["--debug", "version"]);
    s.ok("T012", &["-V"]);
    s.ok("T013", &["--version"]);
    // T014 (Docker Hub search) needs the network: `search --list-tags` against our registry.
    assert!(s
        .ok(
            "T014",
            &["search", "--list-tags", &format!("{reg}/library/busybox")]
        )
        .lines()
        .any(|l| l == "latest"));
    s.ok("T015", &["pull", &img]);
    s.ok("T016", &["--insecure", "pull", &img]);
    s.ok("T017", &["verify", &img]);
    assert!(s
        .ok("T018", &["images"])
        .contains("library/debian:bookworm"));
    s.ok("T019", &["inspect", &img]);
    let id = s.ok("T020", &["-q", "create", &img]).trim().to_string();
    assert_eq!(
        id.len(),
        36,
        "T020: stdout must be the container id, got {id:?}"
    );
    s.ok("T021", &["create", "--name=ubuntu", &img]);
    s.ok("T022", &["ps"]);
    s.ok("T023", &["name", &id, "conti"]);
    assert!(s.ok("T023", &["ps"]).contains("conti"));
    s.ok("T024", &["rmname", "conti"]);
    s.ok("T025", &["inspect", &id]);
    s.ok("T026", &["clone", "--name=myclone", &id]);
    let exported = s.t.home.join("myexportcont.tar");
    s.ok("T027", &["export", "-o", exported.to_str().unwrap(), &id]);
    s.ok("T028", &["rm", &id]);
    assert!(s.ok("T029", &["setup", "ubuntu"]).contains("execmode:"));
    let repo2 = s.t.home.join("repo2");
    s.ok("T030", &["mkrepo", repo2.to_str().unwrap()]);
    let r2 = format!("--repo={}", repo2.display());
    s.ok("T031", &[&r2, "pull", &img]);
    s.ok("T032", &[&r2, "verify", &img]);
    let o = s.t.ud_env(
        &[("UDOCKER_DIR", repo2.to_str().unwrap())],
        &["verify", &img],
    );
    assert!(
        o.status.success(),
        "T033: UDOCKER_DIR=… verify\n{}",
        show(&o)
    );
    s.ok("T034", &["load", "-i", &s.t.fx.get("ARCHIVE_DOCKER")]);
    s.ok("T035", &["protect", "ubuntu"]);
    s.inv("T036", &["rm", "ubuntu"]);
    s.ok("T037", &["unprotect", "ubuntu"]);
    s.ok("T038", &["rm", "ubuntu"]);
    s.ok(
        "T039",
        &["import", exported.to_str().unwrap(), "mycentos1:latest"],
    );
    s.ok(
        "T040",
        &[
            "import",
            "--tocontainer",
            "--name=mycont",
            exported.to_str().unwrap(),
        ],
    );
    let cloned = s.t.home.join("myclone.tar");
    s.ok(
        "T041a",
        &[
            "export",
            "--clone",
            "-o",
            cloned.to_str().unwrap(),
            "myclone",
        ],
    );
    s.ok(
        "T041",
        &[
            "import",
            "--clone",
            "--name=clone_cont",
            cloned.to_str().unwrap(),
        ],
    );
    s.ok("T042", &["rmi", &img]);
    s.ok("T043", &["ps", "-m"]);
    s.ok("T044", &["ps", "-s", "-m"]);
    s.ok("T045", &["images", "-l"]);
    // T046–T051: python:3-slim and ECR's redis need the network; the same flow on local images.
    let py = format!("{reg}/test/multilayer:latest");
    s.ok("T046", &["pull", &py]);
    s.ok("T047", &["create", "--name=py3slim", &py]);
    assert!(s
        .ok(
            "T048",
            &["run", "--nobanner", "py3slim", "/bin/busybox", "echo", "ok"]
        )
        .contains("ok"));
    let tok = format!("{}/library/busybox:latest", s.t.fx.get("REGISTRY_TOKEN"));
    s.ok("T049", &["pull", &tok]); // anonymous bearer token, as ECR public
    s.ok("T050", &["create", "--name=redis", &tok]);
    assert!(s
        .ok(
            "T051",
            &["run", "--nobanner", "redis", "/bin/busybox", "--help"]
        )
        .contains("BusyBox"));
    s.ok(
        "T052",
        &["login", "--username=username", "--password=password"],
    );
    s.ok("T053", &["logout", "-a"]);
}

/// `udocker_test-run.sh` P1 and P2 rows (T001–T012): setup the mode, then `run X ls --version`.
#[test]
fn udocker_test_run_sh_p1_p2() {
    let s = Suite { t: TestEnv::new() };
    let reg = s.t.fx.registry();
    let images = [
        ("c7", format!("{reg}/library/debian:bookworm")),
        ("jv", format!("{reg}/library/busybox:latest")),
    ];
    for (name, img) in &images {
        s.ok("pull", &["pull", img]);
        s.ok("create", &["create", &format!("--name={name}"), img]);
    }
    for mode in ["P1", "P2"] {
        for (name, _) in &images {
            s.ok(mode, &["setup", &format!("--execmode={mode}"), name]);
            // `ls --version` upstream; busybox's ls has no --version and prints --help on stderr.
            let o =
                s.t.ud(&["run", "--nobanner", "--env=LANG=C", name, "ls", "--help"]);
            let all = format!("{}{}", stdout(&o), stderr(&o)).to_lowercase();
            assert!(
                o.status.success() && all.contains("usage"),
                "{mode} {name}: ls --help\n{}",
                show(&o)
            );
        }
    }
}
