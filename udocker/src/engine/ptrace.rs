//! P1/P2: the plan run by the built-in tracer (`tracer` crate), upstream's PRoot engine (§5).
//! Upstream's command line `proot [-v] --kill-on-exit -b H:C… (-0|-i U:G) -k REL -r ROOT -w CWD
//! CMD` becomes a [`tracer::Config`]; P2 is the tracer without its seccomp filter. The CPU
//! affinity of `--cpuset-cpus` is set on this process before the tracer forks, so the guest
//! inherits it (upstream runs numactl or taskset).

use super::{EngineError, ExecMode, Plan};
use std::os::unix::ffi::OsStrExt;

/// The tracer's configuration for a plan.
pub fn config(plan: &Plan, verbose: u8) -> tracer::Config {
    tracer::Config {
        root: plan.root.clone(),
        bindings: plan
            .volumes
            .iter()
            .map(|v| tracer::Binding {
                host: v.host.as_os_str().as_bytes().to_vec(),
                guest: v.guest.as_bytes().to_vec(),
                // `-v H:C:ro`: the tracer fails writes below C with EROFS.
                readonly: v.readonly,
                nofollow: false,
            })
            .collect(),
        cwd: plan.cwd.as_bytes().to_vec(),
        fake_id: Some((plan.user.entry.uid, plan.user.entry.gid)),
        kernel_release: plan.kernel.clone(),
        kill_on_exit: true,
        // P1 falls back to P2 when no seccomp filter can be installed (old kernels), as PRoot.
        mode: match plan.mode {
            ExecMode::P2 => tracer::Mode::P2,
            _ => tracer::Mode::Auto,
        },
        // The tracer's own speed-up (see its docs); UDOCKER_TRACER_PIN=0 turns it off, =1 on.
        // Off by default inside a batch or MPI job: programs size their thread pools (OpenMP,
        // hwloc binding) from the affinity mask srun -c N / mpirun gave, at start-up. The
        // tracer answers sched_getaffinity with that mask while pinned, but /proc/self/status
        // (Cpus_allowed, which hwloc may read) would still show the pin.
        pin_cpu: match std::env::var_os("UDOCKER_TRACER_PIN") {
            Some(v) => v != "0",
            None => !super::Launch::current().job,
        },
        glue: true,
        last_exit_status: false,
        ports: plan
            .ports
            .iter()
            .map(|&(guest, host)| tracer::net::PortMap { guest, host })
            .collect(),
        netcoop: plan.netcoop,
        verbose,
        qemu: None,
    }
}

/// Pin this process (and so the container) to `cpus`.
pub fn set_affinity(cpus: &[usize]) -> Result<(), EngineError> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let text = || {
        cpus.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut set = CpuSet::new();
    for c in cpus {
        set.set(*c).map_err(|e| EngineError::Affinity(text(), e))?;
    }
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| EngineError::Affinity(text(), e))
}

/// Run the plan; returns the container's exit status (128+N for death by signal N).
pub fn execute(plan: &Plan, verbose: u8) -> Result<i32, EngineError> {
    if let Some(cpus) = &plan.cpus {
        set_affinity(cpus)?;
    }
    let cfg = config(plan, verbose);
    let argv: Vec<Vec<u8>> = plan.argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    let envp: Vec<Vec<u8>> = plan
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}").into_bytes())
        .collect();
    tracer::run(&cfg, &argv, &envp).map_err(EngineError::Tracer)
}
