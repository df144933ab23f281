/*
 * oompop: one member of a test population for the OOM killer's task table.
 *
 * Sets its comm, oom_score_adj and credentials, optionally forks copies of
 * itself, touches anonymous and shared memory, optionally pages part of its
 * anonymous memory out to swap (--pageout MB, MADV_PAGEOUT, Linux 5.4+; needs
 * swap: the harness's zram), starts idle threads, prints "ready <pid>" and
 * sleeps forever.  With --leader-exit the main thread exits
 * after printing, so the group leader becomes a zombie without an mm while its
 * threads live on (the case find_lock_task_mm() exists for).
 *
 * Build: gcc -static -O2 -pthread -o oompop oompop.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MB (1024UL * 1024UL)

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void write_adj(const char *adj)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY);

	if (fd < 0 || write(fd, adj, strlen(adj)) < 0)
		die("oom_score_adj");
	close(fd);
}

static void drop_to(uid_t uid)
{
	if (setgroups(0, NULL) || setgid(uid) || setuid(uid))
		die("setuid");
}

static char *touch(unsigned long mb, int flags)
{
	char *p;

	if (!mb)
		return NULL;
	p = mmap(NULL, mb * MB, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	memset(p, 0x5a, mb * MB);
	return p;
}

/* Pages of [p, p + len) still resident (mincore: a swapped-out page is not). */
static unsigned long resident(char *p, unsigned long len)
{
	static unsigned char vec[1 << 20];
	unsigned long i, n = len / 4096, count = 0;

	if (n > sizeof(vec) || mincore(p, len, vec))
		die("mincore");
	for (i = 0; i < n; i++)
		count += vec[i] & 1;
	return count;
}

/*
 * Swap out the first mb MB of p. Pages still in another CPU's LRU batch are
 * not on the LRU yet and MADV_PAGEOUT skips them: retry a few times.
 */
static void pageout(char *p, unsigned long mb)
{
	unsigned long left = 0;
	int i;

	for (i = 0; i < 20; i++) {
		if (madvise(p, mb * MB, MADV_PAGEOUT))
			die("madvise(MADV_PAGEOUT)");
		left = resident(p, mb * MB);
		if (!left)
			return;
		usleep(20000);
	}
	fprintf(stderr, "pageout: %lu pages still resident\n", left);
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: oompop [--name COMM] [--adj N] [--uid N] [--anon MB] "
			"[--shmem MB] [--pageout MB] [--threads N] [--leader-exit] [--fork N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "adj", required_argument, NULL, 'a' },
		{ "uid", required_argument, NULL, 'u' },
		{ "anon", required_argument, NULL, 'm' },
		{ "shmem", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "leader-exit", no_argument, NULL, 'x' },
		{ "fork", required_argument, NULL, 'f' },
		{ "pageout", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *adj = NULL;
	long uid = -1, anon = 0, shmem = 0, threads = 0, forks = 0, out = 0;
	int leader_exit = 0, c;
	pthread_t tid;
	char *anon_p;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 'a': adj = optarg; break;
		case 'u': uid = atol(optarg); break;
		case 'm': anon = atol(optarg); break;
		case 's': shmem = atol(optarg); break;
		case 't': threads = atol(optarg); break;
		case 'x': leader_exit = 1; break;
		case 'f': forks = atol(optarg); break;
		case 'p': out = atol(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || (leader_exit && threads < 1) || out < 0 || out > anon)
		usage();

	if (name && prctl(PR_SET_NAME, name))
		die("prctl");
	/* Lowering oom_score_adj needs CAP_SYS_RESOURCE: set it before setuid. */
	if (adj)
		write_adj(adj);
	if (uid >= 0)
		drop_to(uid);
	/* Fork before touching memory so every copy owns its own pages. */
	while (forks-- > 0) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork");
		if (pid == 0)
			break;
	}
	anon_p = touch(anon, MAP_PRIVATE);
	touch(shmem, MAP_SHARED);
	if (out)
		pageout(anon_p, out);
	while (threads-- > 0)
		if (pthread_create(&tid, NULL, idle, NULL))
			die("pthread_create");

	printf("ready %d\n", getpid());
	fflush(stdout);
	if (leader_exit)
		pthread_exit(NULL);
	for (;;)
		pause();
}
