//! HPC: containers as Slurm job steps and as MPI ranks, on the single-node cluster that
//! `scripts/hpc.sh up` runs on loopback (slurmctld, slurmd, slurmdbd with MariaDB for `sacct`),
//! with the image `test/mpi` it pushes (debian:bookworm, Debian's OpenMPI, `/app/allreduce`).
//! Every Slurm and MPI command runs as the test user, as a user of a cluster would.
//!
//! Per execution mode (P1, P2, F1, and R1, R2 where this host lets an ordinary user create user
//! namespaces):
//! * batch: inherited descriptors stay open; `srun -n1 udocker run` and an `sbatch` script (output and exit status); `scancel` of
//!   a running container leaves no process (a double-forked one included); the job's CPU time in
//!   `sacct` includes what the container burnt; `-c`/`--mem` are visible and enforced inside.
//! * MPI: `mpirun -np 2 udocker run --hostenv C /app/allreduce`, `srun --mpi=pmix -n 2 udocker
//!   run C /app/allreduce` (no option: run finds out it is a rank) and `mpirun` inside `sbatch`;
//!   both ranks report the right sum and the real uid.

use e2e::*;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `$UDOCKER_FIXTURES/hpc.env`, written by `scripts/hpc.sh up`. Missing: the suite fails (CI runs
/// the script; a developer is told to).
fn hpc_env() -> &'static HashMap<String, String> {
    static H: OnceLock<HashMap<String, String>> = OnceLock::new();
    H.get_or_init(|| {
        let dir = std::env::var("UDOCKER_FIXTURES")
            .unwrap_or_else(|_| "/var/cache/udocker-rs-fixtures".into());
        let p = Path::new(&dir).join("hpc.env");
        let text = fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}: run scripts/hpc.sh up (as root) first",
                p.display()
            )
        });
        // Fail early and clearly when the cluster is down (after a reboot, or `hpc.sh down`).
        let ping = Command::new("scontrol").arg("ping").output();
        match ping {
            Ok(o) if stdout(&o).contains("is UP") => {}
            other => {
                panic!("slurmctld does not answer ({other:?}): run scripts/hpc.sh up (as root)")
            }
        }
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

fn hpc(key: &str) -> String {
    hpc_env()
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("hpc.env has no {key}: re-run scripts/hpc.sh up"))
}

/// A host program (srun, sbatch, mpirun, ...) as the test user, with the environment udocker
/// commands get (HOME, UDOCKER_DIR): Slurm passes it on to the job.
fn user_cmd(t: &TestEnv, prog: &str, args: &[&str]) -> Command {
    let mut c = match t.user {
        Some((u, g)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={u}"))
                .arg(format!("--regid={g}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(prog);
            c
        }
        None => Command::new(prog),
    };
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &t.home)
        .env("UDOCKER_DIR", &t.udir)
        .env("LANG", "C.UTF-8")
        .current_dir(&t.home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Run as the user with a deadline (a stuck job must fail the test, not hang it).
fn user_run(t: &TestEnv, prog: &str, args: &[&str], timeout: Duration) -> Output {
    let ch = user_cmd(t, prog, args)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {prog}: {e}"));
    wait_child(ch, timeout, &format!("`{prog} {}`", args.join(" ")))
}

fn ud() -> String {
    udocker_bin().to_string_lossy().into_owned()
}

/// A slurm client command as root (sacct -a, scontrol); plain output.
fn slurm_admin(prog: &str, args: &[&str]) -> String {
    let o = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    stdout(&o)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    P1,
    P2,
    F1,
    F3,
    R1,
    R2,
}

/// A world with the MPI image in a container `c` set to `mode`. None (with the reason printed)
/// when the mode cannot run on this host: only R1, without user namespaces.
fn setup(mode: Mode) -> Option<TestEnv> {
    let t = TestEnv::new();
    t.ud_ok(&["pull", &hpc("MPI_REF")]);
    t.ud_ok(&["create", "--name=c", &hpc("MPI_REF")]);
    match mode {
        Mode::P1 => {}
        Mode::P2 | Mode::F1 | Mode::F3 => {
            t.ud_ok(&["setup", &format!("--execmode={mode:?}"), "c"]);
        }
        Mode::R1 | Mode::R2 => {
            t.ud_ok(&["setup", &format!("--execmode={mode:?}"), "c"]);
            let o = t.ud(&["run", "--nobanner", "c", "true"]);
            if !o.status.success() {
                let e = stderr(&o);
                if e.contains("user namespace") || e.contains("no runc or crun") {
                    eprintln!("SKIP {mode:?}: this host cannot run it: {}", e.trim());
                    return None;
                }
                panic!(
                    "R1 does not run here, for an unexpected reason\n{}",
                    show(&o)
                );
            }
        }
    }
    Some(t)
}

fn ok(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed\n{}", show(o));
    stdout(o)
}

const MIN: Duration = Duration::from_secs(60);
const LONG: Duration = Duration::from_secs(180);

/// `srun -n1 ... udocker run --nobanner c ARGS`.
fn srun(t: &TestEnv, slurm: &[&str], args: &[&str]) -> Output {
    let udocker = ud();
    let mut a: Vec<&str> = vec!["-n1", "-t", "3", "--quiet"];
    a.extend_from_slice(slurm);
    a.extend([udocker.as_str(), "run", "--nobanner", "c"]);
    a.extend_from_slice(args);
    user_run(t, "srun", &a, LONG)
}

/// Submit a script; returns the job id.
fn sbatch(t: &TestEnv, opts: &[&str], script: &str) -> String {
    let p = unique(&t.home.join("job"));
    t.write_file(&p, script.as_bytes());
    let ps = p.to_string_lossy().into_owned();
    let out = t.home.join("slurm-%j.out").to_string_lossy().into_owned();
    let mut a = vec!["--parsable", "-t", "3", "-o", out.as_str()];
    a.extend_from_slice(opts);
    a.push(&ps);
    let o = user_run(t, "sbatch", &a, MIN);
    ok(&o, "sbatch")
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn unique(p: &Path) -> PathBuf {
    let mut n = 0;
    loop {
        let q = p.with_extension(format!("{n}.sh"));
        if !q.exists() {
            return q;
        }
        n += 1;
    }
}

/// sacct's view of a job, as root (`-a`): (State, ExitCode, TotalCPU seconds) of the job line.
fn sacct(job: &str) -> Option<(String, String, f64)> {
    let out = slurm_admin(
        "sacct",
        &[
            "-a",
            "-n",
            "-P",
            "-j",
            job,
            "-o",
            "JobID,State,ExitCode,TotalCPU",
        ],
    );
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (f.len() == 4 && f[0] == job).then(|| (f[1].to_string(), f[2].to_string(), secs(f[3])))
    })
}

/// Wait until the job has ended in the accounting database; its final record.
fn wait_job(job: &str, timeout: Duration) -> (String, String, f64) {
    let start = Instant::now();
    loop {
        if let Some(r) = sacct(job) {
            if !matches!(r.0.as_str(), "PENDING" | "RUNNING" | "COMPLETING" | "") {
                return r;
            }
        }
        assert!(
            start.elapsed() < timeout,
            "job {job} did not end within {timeout:?}: {:?}\nsqueue: {}",
            sacct(job),
            slurm_admin("squeue", &["-a"])
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `[D-][HH:]MM:SS[.mmm]` → seconds.
fn secs(s: &str) -> f64 {
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<f64>().unwrap_or(0.0), r),
        None => (0.0, s),
    };
    let mut total = 0.0;
    for part in rest.split(':') {
        total = total * 60.0 + part.parse::<f64>().unwrap_or(0.0);
    }
    days * 86400.0 + total
}

fn job_output(t: &TestEnv, job: &str) -> String {
    fs::read_to_string(t.home.join(format!("slurm-{job}.out"))).unwrap_or_default()
}

/// Processes whose command line contains `token`, with their stat line (state, parent).
fn procs_with(token: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmd.windows(token.len()).any(|w| w == token.as_bytes()) {
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            out.push((
                pid,
                String::from_utf8_lossy(&cmd).replace('\0', " ") + " | " + &stat,
            ));
        }
    }
    out
}

fn node_cpus() -> usize {
    let out = slurm_admin("sinfo", &["-h", "-n", &hpc("SLURM_NODE"), "-o", "%c"]);
    out.trim().parse().expect("sinfo CPUs")
}

// ------------------------------------------------------------------------------------ batch ---

fn batch(mode: Mode) {
    let Some(t) = setup(mode) else { return };
    let udocker = ud();

    // Descriptors the caller hands down stay open in the container (launchers pass some).
    let f = t.home.join("fd-input");
    t.write_file(&f, b"from-fd-5\n");
    let script = format!(
        "exec 5<'{}'; '{udocker}' run --nobanner c sh -c 'read x <&5; echo got:$x'",
        f.display()
    );
    let o = user_run(&t, "sh", &["-c", &script], MIN);
    assert_eq!(ok(&o, "run with fd 5").trim(), "got:from-fd-5", "{mode:?}");

    // srun: output and exit status of the container's command.
    let o = srun(&t, &[], &["sh", "-c", "echo out-$SLURM_JOB_ID; exit 7"]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "srun passes the exit status\n{}",
        show(&o)
    );
    assert!(stdout(&o).starts_with("out-"), "{}", show(&o));
    assert!(
        !stdout(&o).starts_with("out-\n"),
        "SLURM_JOB_ID reaches the container\n{}",
        show(&o)
    );

    // sbatch: the script's output file and the job's exit status in sacct.
    let job = sbatch(
        &t,
        &[],
        &format!("#!/bin/sh\n{udocker} run --nobanner c sh -c 'echo batch-out; exit 3'\n"),
    );
    let (state, code, _) = wait_job(&job, LONG);
    assert_eq!(
        (state.as_str(), code.as_str()),
        ("FAILED", "3:0"),
        "job {job}"
    );
    assert!(
        job_output(&t, &job).contains("batch-out"),
        "{}",
        job_output(&t, &job)
    );

    // CPU accounting: the container burns CPU; sacct's TotalCPU must include it. Compared with
    // the shell's own CPU time (`times`), not wall time: the cores are shared.
    let job = sbatch(
        &t,
        &[],
        &format!(
            "#!/bin/sh\n{udocker} run --nobanner c bash -c \
             'for ((i=0;i<1500000;i++)); do :; done; times'\n"
        ),
    );
    let (state, _, total) = wait_job(&job, LONG);
    assert_eq!(state, "COMPLETED", "{}", job_output(&t, &job));
    let out = job_output(&t, &job);
    let burnt = out
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().next())
        .map(|u| {
            let u = u.trim_end_matches('s');
            let (m, s) = u.split_once('m').unwrap_or(("0", u));
            m.parse::<f64>().unwrap_or(0.0) * 60.0 + s.parse::<f64>().unwrap_or(0.0)
        })
        .unwrap_or(0.0);
    assert!(burnt > 0.3, "the container burnt CPU: {out}");
    assert!(
        total >= burnt * 0.9,
        "sacct TotalCPU {total} s includes the container's {burnt} s"
    );
    eprintln!("{mode:?}: container burnt {burnt:.2} s CPU, sacct TotalCPU {total:.2} s");

    // Limits: -c N is the container's CPU set; --mem is the cgroup limit it sees, and enforced.
    let cpus = "grep Cpus_allowed_list /proc/self/status; nproc";
    let o = srun(&t, &["-c", "1"], &["sh", "-c", cpus]);
    let out = ok(&o, "srun -c 1");
    assert!(
        out.lines().nth(1) == Some("1"),
        "-c 1: one CPU inside\n{out}"
    );
    if node_cpus() >= 2 {
        let o = srun(&t, &["-c", "2"], &["sh", "-c", cpus]);
        let out = ok(&o, "srun -c 2");
        assert!(
            out.lines().nth(1) == Some("2"),
            "-c 2: two CPUs inside\n{out}"
        );
    }
    // The smallest memory limit on the way up the container's memory cgroup.
    let limit = "p=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup); \
                 while [ -n \"$p\" ]; do cat /sys/fs/cgroup/memory$p/memory.limit_in_bytes; \
                 p=${p%/*}; done | sort -n | head -n 1";
    let o = srun(&t, &["--mem=100M"], &["sh", "-c", limit]);
    assert_eq!(
        ok(&o, "srun --mem").trim(),
        "104857600",
        "--mem=100M visible"
    );
    // 400 MB through `tail -n 1` (it keeps a line without newlines in memory); pipefail: the
    // OOM-killed tail decides the exit status (slurmstepd's OOM report can race the step's end).
    let o = srun(
        &t,
        &["--mem=100M"],
        &[
            "bash",
            "-c",
            "set -o pipefail; head -c 400M /dev/zero | tail -n 1 | wc -c",
        ],
    );
    let e = stderr(&o).to_lowercase();
    assert!(
        !o.status.success()
            && (e.contains("out of memory")
                || e.contains("oom-kill")
                || o.status.code() == Some(137)),
        "--mem=100M is enforced (OOM kill)\n{}",
        show(&o)
    );

    // scancel: the container's processes, a double-forked (setsid) one included, are gone
    // within seconds: none reparented to init, no stopped tracee.
    let token = format!("{}", 86400 + std::process::id() % 10000 * 10 + mode as u32);
    let job = sbatch(
        &t,
        &[],
        &format!(
            "#!/bin/sh\n{udocker} run --nobanner c sh -c \
             'setsid sh -c \"sleep {token}\" & sleep {token}'\n"
        ),
    );
    // udocker (the tracer, in P1), the shell and its sleeps.
    assert!(
        wait_until(LONG, || procs_with(&token).len() >= 3),
        "job {job}: the container's two sleeps did not start: {:?}\n{}",
        procs_with(&token),
        job_output(&t, &job)
    );
    let start = Instant::now();
    let o = user_run(&t, "scancel", &[&job], MIN);
    ok(&o, "scancel");
    let gone = wait_until(Duration::from_secs(15), || procs_with(&token).is_empty());
    assert!(
        gone,
        "scancel left processes behind after {:?}: {:?}",
        start.elapsed(),
        procs_with(&token)
    );
    eprintln!(
        "{mode:?}: scancel: every container process gone after {:?}",
        start.elapsed()
    );
    let (state, _, _) = wait_job(&job, MIN);
    assert!(state.starts_with("CANCELLED"), "{state}");
}

#[test]
fn batch_p1() {
    batch(Mode::P1);
}

#[test]
fn batch_p2() {
    batch(Mode::P2);
}

#[test]
fn batch_r2() {
    batch(Mode::R2);
}

#[test]
fn batch_f1() {
    batch(Mode::F1);
}

#[test]
fn batch_r1() {
    batch(Mode::R1);
}

// -------------------------------------------------------------------------------------- MPI ---

fn check_allreduce(o: &Output, what: &str, t: &TestEnv) {
    let out = ok(o, what);
    let uid = t
        .user
        .map(|(u, _)| u)
        .unwrap_or_else(|| nix::unistd::getuid().as_raw());
    let line = out
        .lines()
        .find(|l| l.starts_with("allreduce "))
        .unwrap_or_else(|| panic!("{what}: no result line\n{}", show(o)));
    assert!(
        line.starts_with("allreduce ok: size=2 sum=3 "),
        "{what}: both ranks communicated\n{}",
        show(o)
    );
    // Under PMIx the ranks run as the real user (fake root fails PMIx's credential check).
    assert!(
        line.ends_with(&format!("uids={uid},{uid}")),
        "{what}: ranks run as uid {uid}\n{}",
        show(o)
    );
}

fn mpi(mode: Mode) {
    let Some(t) = setup(mode) else { return };
    let udocker = ud();

    // mpirun on the host, one container per rank: the recipe of the README.
    let o = user_run(
        &t,
        "mpirun",
        &[
            "--oversubscribe",
            "-np",
            "2",
            &udocker,
            "run",
            "--nobanner",
            "--hostenv",
            "c",
            "/app/allreduce",
        ],
        LONG,
    );
    check_allreduce(&o, "mpirun -np 2 udocker run --hostenv", &t);

    // srun with Slurm's PMIx plugin; no option tells run it is a rank.
    let o = user_run(
        &t,
        "srun",
        &[
            "--mpi=pmix",
            "-n",
            "2",
            "-t",
            "3",
            "--quiet",
            &udocker,
            "run",
            "--nobanner",
            "c",
            "/app/allreduce",
        ],
        LONG,
    );
    check_allreduce(&o, "srun --mpi=pmix -n 2 udocker run", &t);

    // mpirun inside a batch job (it starts its daemons through Slurm).
    let job = sbatch(
        &t,
        &["-n", "2"],
        &format!("#!/bin/sh\nmpirun -np 2 {udocker} run --nobanner c /app/allreduce\n"),
    );
    let (state, _, _) = wait_job(&job, LONG);
    let out = job_output(&t, &job);
    assert_eq!(state, "COMPLETED", "{out}");
    assert!(out.contains("allreduce ok: size=2 sum=3 "), "{out}");
}

#[test]
fn mpi_p1() {
    mpi(Mode::P1);
}

#[test]
fn mpi_p2() {
    mpi(Mode::P2);
}

#[test]
fn mpi_r2() {
    mpi(Mode::R2);
}

#[test]
fn mpi_f1() {
    mpi(Mode::F1);
}

#[test]
fn mpi_f3() {
    mpi(Mode::F3);
}

#[test]
fn mpi_r1() {
    mpi(Mode::R1);
}

#[test]
fn sacct_secs_parse() {
    assert_eq!(secs("00:02.361"), 2.361);
    assert_eq!(secs("01:00:02"), 3602.0);
    assert_eq!(secs("1-00:00:01"), 86401.0);
}
