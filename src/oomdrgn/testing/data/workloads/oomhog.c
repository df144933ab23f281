/*
 * oomhog: allocate and touch memory 1 MB at a time until the OOM killer acts.
 *
 * Build: gcc -static -O2 -o oomhog oomhog.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#define CHUNK (1024UL * 1024UL)

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "adj", required_argument, NULL, 'a' },
		{ "step-ms", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *adj = NULL;
	long step_ms = 0;
	int c, fd;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 'a': adj = optarg; break;
		case 's': step_ms = atol(optarg); break;
		default:
			fprintf(stderr, "usage: oomhog [--name COMM] [--adj N] [--step-ms MS]\n");
			return 2;
		}
	}
	if (name)
		prctl(PR_SET_NAME, name);
	if (adj) {
		fd = open("/proc/self/oom_score_adj", O_WRONLY);
		if (fd < 0 || write(fd, adj, strlen(adj)) < 0) {
			perror("oom_score_adj");
			return 1;
		}
		close(fd);
	}
	printf("hog %d\n", getpid());
	fflush(stdout);
	for (;;) {
		char *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			usleep(10000);
			continue;
		}
		memset(p, 0xa5, CHUNK);
		if (step_ms)
			usleep(step_ms * 1000);
	}
}
