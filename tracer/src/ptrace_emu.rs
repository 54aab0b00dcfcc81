//! ptrace(2) used inside the guest (gdb, strace, PRoot itself): every guest task is already
//! traced by us and a task has only one tracer, so the kernel would answer a guest's
//! PTRACE_TRACEME/ATTACH with EPERM. We play the kernel instead (as PRoot does): a guest
//! "ptracer" and its "ptracees" are bookkeeping here; the stops we receive for a ptracee are
//! kept (the task stays stopped) and reported through the ptracer's wait4/waitid, and its
//! ptrace requests are carried out by us on the stopped task.
//!
//! Cost: only `ptrace` is added to the seccomp filter (no program calls it on a hot path).
//! wait4/waitid are *not* in the filter: a task that has ptracees is resumed with
//! PTRACE_SYSCALL instead (seccomp acceleration off for it alone, as PRoot does for that
//! subtree), so its waits are seen while ordinary shells keep waiting untraced. A ptracee is
//! resumed with PTRACE_SYSCALL only while its ptracer asked for syscall stops.
//!
//! Waits: a ptracer's wait that a kept stop or exit satisfies is answered here; otherwise it
//! runs in the kernel (which knows the ptracer's ordinary children and reaps ptracees that are
//! its real children). When a ptracee event arrives meanwhile we send SIGCHLD, as the kernel
//! does for ptrace stops (ptrace(2)), and PTRACE_INTERRUPT the ptracer: its wait returns
//! -ERESTARTSYS, is restarted on resume, and the restarted call finds the event. A wait the
//! kernel fails with ECHILD while ptracees that are not real children remain (they were
//! auto-attached grandchildren or attached strangers) is rewound and kept until an event.
//!
//! Not emulated: PTRACE_GET_SYSCALL_INFO, SYSEMU, PEEKSIGINFO (EIO, callers fall back),
//! TRACESECCOMP reports for filters the guest installed other than our own call set.

use crate::arch::Regs;
use crate::sys;
use crate::tracer::Ctx;
use nix::unistd::Pid;
use std::collections::HashMap;

/// What the ptrace/wait4/waitid entry hook decided.
pub enum Enter {
    /// Emulated: skip the call, this is its result.
    Return(i64),
    /// Run it in the kernel and show us its exit (ECHILD handling).
    WaitExit,
    /// Not ours: run it untouched.
    Pass,
}

/// How the guest ptracer last resumed a ptracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Cont,
    Syscall,
    Step,
}

/// A stop kept for the guest ptracer, and what resuming it means for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// A syscall-enter stop reported before our own translation: translate on resume.
    Enter,
    /// A seccomp stop reported (PTRACE_O_TRACESECCOMP) before our handling of it.
    Seccomp,
    /// Our work for the stop is done: just resume.
    Resume,
    /// A signal-delivery stop: resume with the signal the ptracer chose.
    Signal,
}

#[derive(Debug)]
pub struct Ptracee {
    pub tracer: Pid,
    /// PTRACE_O_* the guest ptracer set.
    pub options: u64,
    /// Attached with PTRACE_SEIZE (no legacy SIGTRAP after exec, EVENT_STOP for new children).
    pub seized: bool,
    /// The ptracer is the real parent: the kernel reports and reaps its exit.
    pub real_child: bool,
    pub restart: Restart,
    pub held: Option<Held>,
    /// A wait status not yet collected, with its arrival number (reported oldest first).
    pub status: Option<(u64, i32)>,
    pub eventmsg: u64,
    /// Gone: `status` is its exit, the entry goes when it is waited for.
    pub exited: bool,
    /// Its next PTRACE_EVENT_STOP (first stop of an auto-attached child, or one we asked
    /// for with PTRACE_INTERRUPT) is to be reported with this status.
    pub await_stop: Option<i32>,
    /// The number of the call at its syscall-enter stop: a call we answered ourselves has -1
    /// at its exit, which the ptracer must not see.
    pub entry_nr: i64,
}

#[derive(Debug, Default)]
pub struct Ptracer {
    /// Stopped by us at the exit of a wait the kernel failed with ECHILD, rewound to run again.
    pub parked: bool,
    /// Possibly blocked in a kernel wait (unknown at first: assume so).
    pub in_wait: bool,
}

#[derive(Debug, Default)]
pub struct Emu {
    pub ptracees: HashMap<Pid, Ptracee>,
    pub ptracers: HashMap<Pid, Ptracer>,
    seq: u64,
    /// Resumed by the ptracer, to be carried on by the event loop: (task, stop, signal).
    replays: Vec<(Pid, Held, i32)>,
    /// The last tasks that ended (pid, wait status): a child can exit before its parent's
    /// fork event reaches us, and an auto-attaching ptracer must still get its exit.
    recent_deaths: std::collections::VecDeque<(Pid, i32)>,
}

impl Emu {
    /// Whether `pid` must be resumed with PTRACE_SYSCALL: a ptracer (to see its waits) or a
    /// ptracee whose ptracer wants syscall stops.
    pub fn full_trace(&self, pid: Pid) -> bool {
        self.ptracers.contains_key(&pid)
            || self
                .ptracees
                .get(&pid)
                .is_some_and(|p| p.restart == Restart::Syscall)
    }

    pub fn stepping(&self, pid: Pid) -> bool {
        self.ptracees
            .get(&pid)
            .is_some_and(|p| p.restart == Restart::Step)
    }

    /// Stopped on purpose: the event loop must not resume it.
    pub fn holds(&self, pid: Pid) -> bool {
        self.ptracers.get(&pid).is_some_and(|t| t.parked)
            || self.ptracees.get(&pid).is_some_and(|p| p.held.is_some())
    }

    pub fn take_replays(&mut self) -> Vec<(Pid, Held, i32)> {
        std::mem::take(&mut self.replays)
    }

    fn is_ptracee(&self, pid: Pid) -> bool {
        self.ptracees.get(&pid).is_some_and(|p| !p.exited)
    }
}

// wait(2) status words, as the kernel builds them for a ptrace stop (ptrace(2) "Stopped
// states"): low byte 0x7f, then the signal, then the PTRACE_EVENT_* number.
fn stopped(sig: i32) -> i32 {
    ((sig & 0xff) << 8) | 0x7f
}

fn event_status(ev: i32) -> i32 {
    stopped(libc::SIGTRAP) | (ev << 16)
}

const O_TRACESYSGOOD: u64 = libc::PTRACE_O_TRACESYSGOOD as u64;
const O_TRACEFORK: u64 = libc::PTRACE_O_TRACEFORK as u64;
const O_TRACEVFORK: u64 = libc::PTRACE_O_TRACEVFORK as u64;
const O_TRACECLONE: u64 = libc::PTRACE_O_TRACECLONE as u64;
const O_TRACEEXEC: u64 = libc::PTRACE_O_TRACEEXEC as u64;
const O_TRACEVFORKDONE: u64 = libc::PTRACE_O_TRACEVFORKDONE as u64;
const O_TRACEEXIT: u64 = libc::PTRACE_O_TRACEEXIT as u64;
const O_TRACESECCOMP: u64 = libc::PTRACE_O_TRACESECCOMP as u64;
const O_EXITKILL: u64 = libc::PTRACE_O_EXITKILL as u64;
const O_SUSPEND_SECCOMP: u64 = 1 << 21;
/// Every option the kernel accepts (PTRACE_O_MASK in linux/ptrace.h).
const O_MASK: u64 = 0xff | O_EXITKILL | O_SUSPEND_SECCOMP;

/// Our own options on every tracee; a ptracer's EXIT/VFORKDONE wishes are added on its ptracee.
fn base_options(ctx: &Ctx) -> u64 {
    let mut o =
        O_TRACESYSGOOD | O_TRACEFORK | O_TRACEVFORK | O_TRACECLONE | O_TRACEEXEC | O_EXITKILL;
    if !ctx.p2 {
        o |= O_TRACESECCOMP;
    }
    o
}

/// The parent process of `pid` (/proc/PID/status "PPid:", proc(5)).
fn parent_of(pid: Pid) -> Option<Pid> {
    let s = std::fs::read_to_string(format!("/proc/{}/status", pid.as_raw())).ok()?;
    let line = s.lines().find(|l| l.starts_with("PPid:"))?;
    line[5..].trim().parse::<i32>().ok().map(Pid::from_raw)
}

fn register(ctx: &mut Ctx, pid: Pid, tracer: Pid, seized: bool, options: u64, real_child: bool) {
    ctx.emu.ptracees.insert(
        pid,
        Ptracee {
            tracer,
            options,
            seized,
            real_child,
            restart: Restart::Cont,
            held: None,
            status: None,
            eventmsg: 0,
            exited: false,
            await_stop: None,
            entry_nr: -1,
        },
    );
    ctx.emu.ptracers.entry(tracer).or_insert(Ptracer {
        parked: false,
        in_wait: true,
    });
    ctx.debug(|| format!("ptrace emulation: {pid} is now traced by {tracer}"));
}

/// Keep `pid` stopped and make `status` visible to its ptracer's wait.
fn report(ctx: &mut Ctx, pid: Pid, status: i32, held: Option<Held>) {
    ctx.emu.seq += 1;
    let seq = ctx.emu.seq;
    let Some(p) = ctx.emu.ptracees.get_mut(&pid) else {
        return;
    };
    p.status = Some((seq, status));
    p.held = held;
    let tracer = p.tracer;
    ctx.debug(|| format!("ptrace emulation: {pid} reports {status:#x} to {tracer}"));
    notify(ctx, tracer);
}

/// Wake the ptracer: SIGCHLD as the kernel sends for a ptrace stop, an interrupt of a kernel
/// wait it may be blocked in (SIGCHLD may be blocked or ignored), or the end of its parking.
fn notify(ctx: &mut Ctx, tracer: Pid) {
    let Some(t) = ctx.emu.ptracers.get_mut(&tracer) else {
        return;
    };
    if t.parked {
        t.parked = false;
        // Rewound at its wait's exit: it runs the wait again, which now finds the event.
        let _ = sys::ptrace_restart(tracer, true, 0);
        return;
    }
    let _ = nix::sys::signal::kill(tracer, nix::sys::signal::Signal::SIGCHLD);
    if t.in_wait {
        let _ = sys::ptrace_interrupt(tracer);
    }
}

/// A syscall-enter stop (PTRACE_SYSCALL): reported before we translate anything, so the
/// ptracer sees the guest's own arguments. True: kept for the ptracer.
pub fn on_syscall_enter_stop(ctx: &mut Ctx, pid: Pid) -> bool {
    let Some(p) = ctx.emu.ptracees.get(&pid) else {
        return false;
    };
    if p.restart != Restart::Syscall || p.exited {
        return false;
    }
    let sig = syscall_sig(p.options);
    let n = nix::sys::ptrace::getregs(pid)
        .map(|r| Regs(r).nr())
        .unwrap_or(-1);
    if let Some(p) = ctx.emu.ptracees.get_mut(&pid) {
        p.entry_nr = n;
    }
    report(ctx, pid, stopped(sig), Some(Held::Enter));
    true
}

fn syscall_sig(options: u64) -> i32 {
    if options & O_TRACESYSGOOD != 0 {
        libc::SIGTRAP | 0x80
    } else {
        libc::SIGTRAP
    }
}

/// A syscall-exit stop, after our own exit work (results already in the guest's terms).
pub fn after_syscall_exit(ctx: &mut Ctx, pid: Pid) -> bool {
    let Some(p) = ctx.emu.ptracees.get(&pid) else {
        return false;
    };
    if p.restart != Restart::Syscall || p.exited {
        return false;
    }
    let sig = syscall_sig(p.options);
    let n = std::mem::replace(
        &mut ctx.emu.ptracees.get_mut(&pid).expect("checked").entry_nr,
        -1,
    );
    if n != -1 {
        if let Ok(r) = nix::sys::ptrace::getregs(pid) {
            let mut r = Regs(r);
            if r.nr() == -1 {
                r.set_nr(n);
                let _ = nix::sys::ptrace::setregs(pid, r.0);
            }
        }
    }
    report(ctx, pid, stopped(sig), Some(Held::Resume));
    true
}

/// Signal-delivery stop: every signal but SIGKILL stops a traced task (ptrace(2)).
pub fn on_signal_stop(ctx: &mut Ctx, pid: Pid, sig: i32) -> bool {
    if !ctx.emu.is_ptracee(pid) {
        return false;
    }
    report(ctx, pid, stopped(sig), Some(Held::Signal));
    true
}

/// A seccomp stop of a ptracee whose ptracer asked for them (PTRACE_O_TRACESECCOMP).
pub fn on_seccomp(ctx: &mut Ctx, pid: Pid) -> bool {
    let Some(p) = ctx.emu.ptracees.get_mut(&pid) else {
        return false;
    };
    if p.options & O_TRACESECCOMP == 0 || p.exited {
        return false;
    }
    // SECCOMP_RET_DATA of the filter, which GETEVENTMSG returns.
    p.eventmsg = nix::sys::ptrace::getevent(pid)
        .map(|v| v as u64)
        .unwrap_or(0);
    report(
        ctx,
        pid,
        event_status(libc::PTRACE_EVENT_SECCOMP),
        Some(Held::Seccomp),
    );
    true
}

/// fork/vfork/clone of a ptracee: the child is traced too when the ptracer asked
/// (PTRACE_O_TRACEFORK…), and starts with a stop of its own. `seen`: we already resumed the
/// child's first stop.
pub fn on_fork(ctx: &mut Ctx, parent: Pid, child: Pid, ev: i32, seen: bool) -> bool {
    let Some(p) = ctx.emu.ptracees.get(&parent) else {
        return false;
    };
    if p.exited {
        return false;
    }
    let want = match ev {
        libc::PTRACE_EVENT_FORK => O_TRACEFORK,
        libc::PTRACE_EVENT_VFORK => O_TRACEVFORK,
        _ => O_TRACECLONE,
    };
    if p.options & want == 0 {
        return false;
    }
    let (tracer, options, seized) = (p.tracer, p.options, p.seized);
    register(ctx, child, tracer, seized, options, false);
    // ptrace(2): an auto-attached child starts with SIGSTOP, or PTRACE_EVENT_STOP if seized.
    let first = if seized {
        event_status(libc::PTRACE_EVENT_STOP)
    } else {
        stopped(libc::SIGSTOP)
    };
    if let Some(c) = ctx.emu.ptracees.get_mut(&child) {
        c.await_stop = Some(first);
    }
    if seen {
        // Its first stop is behind it: stop it again.
        let _ = sys::ptrace_interrupt(child);
    }
    if let Some(p) = ctx.emu.ptracees.get_mut(&parent) {
        p.eventmsg = child.as_raw() as u64;
    }
    report(ctx, parent, event_status(ev), Some(Held::Resume));
    if let Some(&(_, st)) = ctx.emu.recent_deaths.iter().find(|(p, _)| *p == child) {
        // Already gone: its exit is all there is to report.
        if let Some(c) = ctx.emu.ptracees.get_mut(&child) {
            c.await_stop = None;
        }
        report(ctx, child, st, None);
        if let Some(c) = ctx.emu.ptracees.get_mut(&child) {
            c.exited = true;
        }
    }
    true
}

/// PTRACE_EVENT_STOP of a ptracee: one we expect (first stop of an auto-attached child, an
/// interrupt its ptracer asked for) or a group-stop (`group`: the stopping signal), which a
/// seizing ptracer sees as PTRACE_EVENT_STOP with that signal.
pub fn on_stop_event(ctx: &mut Ctx, pid: Pid, group: Option<i32>) -> bool {
    let Some(p) = ctx.emu.ptracees.get_mut(&pid) else {
        return false;
    };
    if p.exited {
        return false;
    }
    let st = match (p.await_stop.take(), group) {
        (_, Some(sig)) if p.seized => stopped(sig) | (libc::PTRACE_EVENT_STOP << 16),
        (Some(st), _) => st,
        // A plain ptracer saw the stopping signal already (signal-delivery stop).
        (None, _) => return false,
    };
    report(ctx, pid, st, Some(Held::Resume));
    true
}

/// A successful execve of a ptracee (`old`: the tid that called it, ptrace(2) "execve(2)
/// under ptrace").
pub fn on_exec(ctx: &mut Ctx, pid: Pid, old: Pid) -> bool {
    if old != pid {
        if let Some(p) = ctx.emu.ptracees.remove(&old) {
            ctx.emu.ptracees.insert(pid, p);
        }
    }
    let Some(p) = ctx.emu.ptracees.get_mut(&pid) else {
        return false;
    };
    if p.exited {
        return false;
    }
    if p.options & O_TRACEEXEC != 0 {
        p.eventmsg = old.as_raw() as u64;
        report(
            ctx,
            pid,
            event_status(libc::PTRACE_EVENT_EXEC),
            Some(Held::Resume),
        );
        return true;
    }
    if !p.seized {
        // The legacy SIGTRAP the kernel sends a traced task after execve (ptrace(2)): a real
        // one, so it arrives after the syscall-exit stop as it would.
        let _ = sys::tgkill(pid, pid, libc::SIGTRAP);
    }
    false
}

/// PTRACE_EVENT_EXIT / VFORK_DONE: we ask for them only on behalf of a ptracer.
pub fn on_other_event(ctx: &mut Ctx, pid: Pid, ev: i32) -> bool {
    let Some(p) = ctx.emu.ptracees.get_mut(&pid) else {
        return false;
    };
    let want = match ev {
        libc::PTRACE_EVENT_EXIT => O_TRACEEXIT,
        libc::PTRACE_EVENT_VFORK_DONE => O_TRACEVFORKDONE,
        _ => return false,
    };
    if p.options & want == 0 || p.exited {
        return false;
    }
    p.eventmsg = nix::sys::ptrace::getevent(pid)
        .map(|v| v as u64)
        .unwrap_or(0);
    report(ctx, pid, event_status(ev), Some(Held::Resume));
    true
}

/// A task is gone (`status`: its raw wait status).
pub fn on_task_gone(ctx: &mut Ctx, pid: Pid, status: i32) {
    if ctx.emu.ptracers.is_empty() {
        // No guest ptracer: nothing to remember (the common case costs nothing).
        ctx.emu.recent_deaths.clear();
    } else {
        if ctx.emu.recent_deaths.len() >= 64 {
            ctx.emu.recent_deaths.pop_front();
        }
        ctx.emu.recent_deaths.push_back((pid, status));
    }
    if let Some(p) = ctx.emu.ptracees.get(&pid) {
        if p.real_child {
            // Its parent, the ptracer, collects it from the kernel.
            let tracer = p.tracer;
            ctx.emu.ptracees.remove(&pid);
            forget_tracer_if_idle(ctx, tracer);
        } else {
            report(ctx, pid, status, None);
            if let Some(p) = ctx.emu.ptracees.get_mut(&pid) {
                p.exited = true;
            }
        }
    }
    if ctx.emu.ptracers.remove(&pid).is_some() {
        // The ptracer died: its ptracees are detached (or killed, PTRACE_O_EXITKILL).
        let mine: Vec<Pid> = ctx
            .emu
            .ptracees
            .iter()
            .filter(|(_, p)| p.tracer == pid)
            .map(|(k, _)| *k)
            .collect();
        for c in mine {
            if let Some(p) = ctx.emu.ptracees.remove(&c) {
                if p.options & O_EXITKILL != 0 && !p.exited {
                    let _ = nix::sys::signal::kill(c, nix::sys::signal::Signal::SIGKILL);
                }
                if let Some(h) = p.held {
                    let sig = if h == Held::Signal {
                        last_signal(p.status)
                    } else {
                        0
                    };
                    ctx.emu.replays.push((c, h, sig));
                }
            }
        }
    }
}

/// The signal of a kept signal-delivery stop (delivered anyway when nobody chose otherwise).
fn last_signal(status: Option<(u64, i32)>) -> i32 {
    status.map(|(_, s)| (s >> 8) & 0xff).unwrap_or(0)
}

fn forget_tracer_if_idle(ctx: &mut Ctx, tracer: Pid) {
    if !ctx.emu.ptracees.values().any(|p| p.tracer == tracer) {
        ctx.emu.ptracers.remove(&tracer);
    }
}

/// Entry of ptrace(2), wait4(2) or waitid(2) by `pid`.
pub fn on_enter(ctx: &mut Ctx, pid: Pid, r: &Regs) -> Enter {
    use crate::arch::nr;
    match r.nr() {
        nr::PTRACE => Enter::Return(ptrace_request(ctx, pid, r)),
        nr::WAIT4 | nr::WAITID if ctx.emu.ptracers.contains_key(&pid) => wait_enter(ctx, pid, r),
        _ => Enter::Pass,
    }
}

const WNOHANG: u64 = libc::WNOHANG as u64;
const WNOWAIT: u64 = libc::WNOWAIT as u64;

fn wait_enter(ctx: &mut Ctx, pid: Pid, r: &Regs) -> Enter {
    use crate::arch::nr;
    let waitid = r.nr() == nr::WAITID;
    // Which children: wait4's pid (-1 any, >0 one, 0 / <-1 process groups, treated as any);
    // waitid's (idtype, id): P_ALL, P_PID, others as any.
    let want: Option<Pid> = if waitid {
        (r.arg(0) == libc::P_PID as u64).then(|| Pid::from_raw(r.arg(1) as i32))
    } else {
        let w = r.arg(0) as i32;
        (w > 0).then(|| Pid::from_raw(w))
    };
    let options = if waitid { r.arg(3) } else { r.arg(2) };
    let matches = |c: &Pid, p: &Ptracee| p.tracer == pid && want.is_none_or(|w| w == *c);
    if !ctx.emu.ptracees.iter().any(|(c, p)| matches(c, p)) {
        return Enter::Pass;
    }
    let found = ctx
        .emu
        .ptracees
        .iter()
        .filter(|(c, p)| matches(c, p))
        .filter_map(|(c, p)| p.status.map(|(seq, st)| (seq, *c, st)))
        .min();
    let Some((_, child, status)) = found else {
        if let Some(t) = ctx.emu.ptracers.get_mut(&pid) {
            t.in_wait = true;
        }
        return Enter::WaitExit;
    };
    let consume = !(waitid && options & WNOWAIT != 0);
    let res = if waitid {
        write_siginfo(ctx, pid, r.arg(2), child, status).map(|_| 0)
    } else {
        let mut ok = Ok(child.as_raw() as i64);
        if r.arg(1) != 0 {
            ok = crate::mem::write(pid, r.arg(1), &status.to_ne_bytes())
                .map(|_| child.as_raw() as i64);
        }
        ok
    };
    let ru = if waitid { r.arg(4) } else { r.arg(3) };
    if ru != 0 {
        // No usage figures for an emulated wait: zeros, as for a child that used nothing.
        let _ = crate::mem::write(pid, ru, &[0u8; std::mem::size_of::<libc::rusage>()]);
    }
    match res {
        Ok(v) => {
            if consume {
                let gone = ctx.emu.ptracees.get_mut(&child).is_some_and(|p| {
                    p.status = None;
                    p.exited
                });
                if gone {
                    ctx.emu.ptracees.remove(&child);
                    forget_tracer_if_idle(ctx, pid);
                }
            }
            Enter::Return(v)
        }
        Err(_) => Enter::Return(-(libc::EFAULT as i64)),
    }
}

/// waitid(2)'s siginfo_t for a status (x86_64 layout: si_signo 0, si_errno 4, si_code 8,
/// si_pid 16, si_uid 20, si_status 24).
fn write_siginfo(ctx: &Ctx, pid: Pid, addr: u64, child: Pid, status: i32) -> nix::Result<()> {
    if addr == 0 {
        return Ok(());
    }
    let (code, st) = if libc::WIFEXITED(status) {
        (libc::CLD_EXITED, libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        (libc::CLD_KILLED, libc::WTERMSIG(status))
    } else {
        // A ptrace stop: si_status is the whole stop code, event bits included.
        (libc::CLD_TRAPPED, status >> 8)
    };
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&libc::SIGCHLD.to_ne_bytes());
    b[8..12].copy_from_slice(&code.to_ne_bytes());
    b[16..20].copy_from_slice(&child.as_raw().to_ne_bytes());
    b[20..24].copy_from_slice(&ctx.uid.to_ne_bytes());
    b[24..28].copy_from_slice(&st.to_ne_bytes());
    crate::mem::write(pid, addr, &b)
}

/// Exit of a ptracer's wait that ran in the kernel (`ret`: its result).
pub fn on_wait_exit(ctx: &mut Ctx, pid: Pid, orig: Regs, ret: i64) {
    use crate::arch::nr;
    if let Some(t) = ctx.emu.ptracers.get_mut(&pid) {
        t.in_wait = false;
    }
    if ret != -(libc::ECHILD as i64) {
        return;
    }
    // ECHILD: the kernel knows no child to wait for, but ptracees that are not children are
    // still ours to report. WNOHANG: "none yet" (0). Otherwise run the wait again once an
    // event arrives (or now, if one already did).
    let waitid = orig.nr() == nr::WAITID;
    let options = if waitid { orig.arg(3) } else { orig.arg(2) };
    if !ctx.emu.ptracees.values().any(|p| p.tracer == pid) {
        return;
    }
    let Ok(cur) = nix::sys::ptrace::getregs(pid) else {
        return;
    };
    if options & WNOHANG != 0 {
        let mut out = Regs(cur);
        out.set_ret(0);
        let _ = nix::sys::ptrace::setregs(pid, out.0);
        return;
    }
    let mut again = orig;
    again.restart_syscall();
    let _ = nix::sys::ptrace::setregs(pid, again.0);
    let pending = ctx
        .emu
        .ptracees
        .values()
        .any(|p| p.tracer == pid && p.status.is_some());
    if !pending {
        if let Some(t) = ctx.emu.ptracers.get_mut(&pid) {
            t.parked = true;
        }
    }
}

fn neg(e: i32) -> i64 {
    -(e as i64)
}

/// One guest ptrace(2) request, carried out on its behalf. Returns the syscall's result.
fn ptrace_request(ctx: &mut Ctx, pid: Pid, r: &Regs) -> i64 {
    let req = r.arg(0) as u32;
    let target = Pid::from_raw(r.arg(1) as i32);
    let (addr, data) = (r.arg(2), r.arg(3));
    ctx.debug(|| {
        format!("ptrace emulation: {pid} ptrace({req:#x}, {target}, {addr:#x}, {data:#x})")
    });
    match req {
        libc::PTRACE_TRACEME => {
            if ctx.emu.is_ptracee(pid) {
                return neg(libc::EPERM);
            }
            match parent_of(pid) {
                Some(parent) if ctx.tracees.contains_key(&parent) => {
                    register(ctx, pid, parent, false, 0, true);
                    0
                }
                _ => neg(libc::EPERM),
            }
        }
        libc::PTRACE_ATTACH | libc::PTRACE_SEIZE => {
            if !ctx.tracees.contains_key(&target) {
                return neg(libc::ESRCH);
            }
            if target == pid || ctx.emu.is_ptracee(target) {
                return neg(libc::EPERM);
            }
            let seize = req == libc::PTRACE_SEIZE;
            if seize && data & !O_MASK != 0 {
                return neg(libc::EINVAL);
            }
            let real_child = parent_of(target) == Some(pid);
            register(
                ctx,
                target,
                pid,
                seize,
                if seize { data } else { 0 },
                real_child,
            );
            if seize {
                apply_options(ctx, target, data);
            } else {
                // PTRACE_ATTACH sends SIGSTOP (ptrace(2)); its delivery stop is reported.
                let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP);
            }
            0
        }
        _ => traced_request(ctx, pid, req, target, addr, data),
    }
}

/// The kernel options for a ptracee: ours, plus the events only its ptracer wants.
fn apply_options(ctx: &Ctx, target: Pid, wanted: u64) {
    let extra = wanted & (O_TRACEEXIT | O_TRACEVFORKDONE);
    let _ = sys::ptrace_setoptions(target, base_options(ctx) | extra);
}

fn traced_request(ctx: &mut Ctx, pid: Pid, req: u32, target: Pid, addr: u64, data: u64) -> i64 {
    let Some(p) = ctx.emu.ptracees.get_mut(&target) else {
        return neg(libc::ESRCH);
    };
    if p.tracer != pid || p.exited {
        return neg(libc::ESRCH);
    }
    match req {
        libc::PTRACE_KILL => {
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
            if let Some(h) = p.held.take() {
                p.status = None;
                ctx.emu.replays.push((target, h, 0));
            }
            return 0;
        }
        libc::PTRACE_INTERRUPT => {
            if !p.seized {
                return neg(libc::EIO);
            }
            if p.held.is_none() {
                p.await_stop = Some(event_status(libc::PTRACE_EVENT_STOP));
                let _ = sys::ptrace_interrupt(target);
            }
            return 0;
        }
        _ => {}
    }
    // Everything else needs the ptracee in a ptrace-stop (ESRCH otherwise, ptrace(2)).
    if p.held.is_none() {
        return neg(libc::ESRCH);
    }
    let res: nix::Result<i64> = match req {
        libc::PTRACE_CONT
        | libc::PTRACE_SYSCALL
        | libc::PTRACE_SINGLESTEP
        | libc::PTRACE_DETACH => {
            let sig = data as i64;
            if !(0..=64).contains(&sig) {
                return neg(libc::EIO);
            }
            let held = p.held.take().expect("checked above");
            p.status = None;
            p.restart = match req {
                libc::PTRACE_SYSCALL => Restart::Syscall,
                libc::PTRACE_SINGLESTEP => Restart::Step,
                _ => Restart::Cont,
            };
            if req == libc::PTRACE_DETACH {
                ctx.emu.ptracees.remove(&target);
                forget_tracer_if_idle(ctx, pid);
                let _ = apply_options_base(ctx, target);
            }
            ctx.emu.replays.push((target, held, sig as i32));
            Ok(0)
        }
        // Leave it in its group-stop but let SIGCONT wake it (ptrace(2) PTRACE_LISTEN): done
        // for real (the kernel refuses it, EIO, unless the stop is a PTRACE_EVENT_STOP); the
        // stop that ends the listening is reported.
        libc::PTRACE_LISTEN => {
            if !p.seized {
                return neg(libc::EIO);
            }
            sys::ptrace_listen(target).map(|_| {
                p.held = None;
                p.status = None;
                p.await_stop = Some(event_status(libc::PTRACE_EVENT_STOP));
                0
            })
        }
        libc::PTRACE_PEEKTEXT | libc::PTRACE_PEEKDATA | libc::PTRACE_PEEKUSER => {
            sys::ptrace_peek(req, target, addr).and_then(|w| {
                crate::mem::write(pid, data, &w.to_ne_bytes())
                    .map_err(|_| nix::errno::Errno::EFAULT)?;
                Ok(0)
            })
        }
        libc::PTRACE_POKETEXT | libc::PTRACE_POKEDATA | libc::PTRACE_POKEUSER => {
            sys::ptrace_poke(req, target, addr, data).map(|_| 0)
        }
        libc::PTRACE_GETREGS
        | libc::PTRACE_GETFPREGS
        | libc::PTRACE_GETSIGINFO
        | libc::PTRACE_SETREGS
        | libc::PTRACE_SETFPREGS
        | libc::PTRACE_SETSIGINFO => {
            let len = sys::ptrace_buf_len(req).expect("fixed-size request");
            let get = matches!(
                req,
                libc::PTRACE_GETREGS | libc::PTRACE_GETFPREGS | libc::PTRACE_GETSIGINFO
            );
            if get {
                let mut buf = vec![0u8; len];
                sys::ptrace_buf(req, target, &mut buf).and_then(|_| {
                    crate::mem::write(pid, data, &buf).map_err(|_| nix::errno::Errno::EFAULT)?;
                    Ok(0)
                })
            } else {
                crate::mem::read(pid, data, len)
                    .map_err(|_| nix::errno::Errno::EFAULT)
                    .and_then(|mut buf| sys::ptrace_buf(req, target, &mut buf).map(|_| 0))
            }
        }
        libc::PTRACE_GETREGSET | libc::PTRACE_SETREGSET => regset(pid, req, target, addr, data),
        libc::PTRACE_GETEVENTMSG => {
            let m = p.eventmsg;
            crate::mem::write(pid, data, &m.to_ne_bytes())
                .map(|_| 0)
                .map_err(|_| nix::errno::Errno::EFAULT)
        }
        libc::PTRACE_SETOPTIONS => {
            if data & !O_MASK != 0 {
                return neg(libc::EINVAL);
            }
            p.options = data;
            apply_options(ctx, target, data);
            Ok(0)
        }
        _ => Err(nix::errno::Errno::EIO),
    };
    match res {
        Ok(v) => v,
        Err(e) => neg(e as i32),
    }
}

fn apply_options_base(ctx: &Ctx, target: Pid) -> nix::Result<()> {
    sys::ptrace_setoptions(target, base_options(ctx))
}

/// PTRACE_GETREGSET/SETREGSET: `data` points at the ptracer's struct iovec.
fn regset(pid: Pid, req: u32, target: Pid, nt: u64, iov_addr: u64) -> nix::Result<i64> {
    let iov = crate::mem::read(pid, iov_addr, 16).map_err(|_| nix::errno::Errno::EFAULT)?;
    let base = u64::from_ne_bytes(iov[0..8].try_into().expect("8 bytes"));
    let len = u64::from_ne_bytes(iov[8..16].try_into().expect("8 bytes"));
    // Register sets are small (x86_64 XSTATE is a few KiB); bound what a guest makes us copy.
    let len = (len as usize).min(64 * 1024);
    if req == libc::PTRACE_SETREGSET {
        let mut buf = crate::mem::read(pid, base, len).map_err(|_| nix::errno::Errno::EFAULT)?;
        sys::ptrace_regset(true, target, nt, &mut buf)?;
        return Ok(0);
    }
    let mut buf = vec![0u8; len];
    let got = sys::ptrace_regset(false, target, nt, &mut buf)?;
    crate::mem::write(pid, base, &buf[..got]).map_err(|_| nix::errno::Errno::EFAULT)?;
    crate::mem::write(pid, iov_addr + 8, &(got as u64).to_ne_bytes())
        .map_err(|_| nix::errno::Errno::EFAULT)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_words_match_the_kernel_encoding() {
        let s = stopped(libc::SIGSTOP);
        assert!(libc::WIFSTOPPED(s));
        assert_eq!(libc::WSTOPSIG(s), libc::SIGSTOP);
        let e = event_status(libc::PTRACE_EVENT_EXEC);
        assert!(libc::WIFSTOPPED(e));
        assert_eq!(e >> 8, libc::SIGTRAP | (libc::PTRACE_EVENT_EXEC << 8));
        assert_eq!(
            syscall_sig(O_TRACESYSGOOD),
            libc::SIGTRAP | 0x80,
            "TRACESYSGOOD marks syscall stops"
        );
        assert_eq!(syscall_sig(0), libc::SIGTRAP);
    }
}
