/* A tiny in-guest debugger: PTRACE_TRACEME child, syscall stops, PEEKDATA/POKEDATA, GETREGS,
 * an exec event and a traced fork, the exit status through waitpid. Prints only facts that are
 * the same natively and under the tracer (no pids, no syscall counts). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long marker = 0x1234;

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "child") == 0) {
		pid_t p = fork();
		if (p == 0)
			_exit(7);
		int st;
		waitpid(p, &st, 0);
		return WEXITSTATUS(st) == 7 ? 3 : 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) {
			perror("TRACEME");
			_exit(100);
		}
		raise(SIGSTOP);
		if (marker != 0x5678)
			_exit(101);
		syscall(SYS_getppid);
		execl("/proc/self/exe", argv[0], "child", (char *)0);
		_exit(102);
	}
	int st, stops = 0, saw_getppid = 0, saw_exec = 0, saw_fork = 0, children = 0;
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGSTOP) {
		printf("first stop: %#x\n", st);
		return 1;
	}
	long w = ptrace(PTRACE_PEEKDATA, pid, (void *)&marker, 0);
	printf("peek: %#lx\n", w);
	ptrace(PTRACE_POKEDATA, pid, (void *)&marker, (void *)0x5678L);
	if (ptrace(PTRACE_SETOPTIONS, pid, 0,
		   PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEFORK) != 0)
		perror("SETOPTIONS");
	ptrace(PTRACE_SYSCALL, pid, 0, 0);
	for (;;) {
		pid_t who = waitpid(-1, &st, __WALL);
		if (who < 0)
			break;
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (who == pid)
				printf("tracee exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
			else
				children++;
			continue;
		}
		int sig = WSTOPSIG(st), ev = st >> 16, inject = 0;
		if (sig == (SIGTRAP | 0x80)) {
			struct user_regs_struct r;
			ptrace(PTRACE_GETREGS, who, 0, &r);
			if (r.orig_rax == SYS_getppid && r.rax == (unsigned long)-38)
				saw_getppid = 1;
			stops++;
		} else if (ev == PTRACE_EVENT_EXEC) {
			saw_exec = 1;
		} else if (ev == PTRACE_EVENT_FORK) {
			saw_fork = 1;
		} else if (sig != SIGSTOP && sig != SIGTRAP) {
			inject = sig;
		}
		ptrace(PTRACE_SYSCALL, who, 0, inject);
	}
	printf("syscall stops: %s, getppid entry: %d, exec event: %d, fork event: %d, traced children exited: %d\n",
	       stops > 10 ? "many" : "few", saw_getppid, saw_exec, saw_fork, children);
	return 0;
}
