package probes

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// forks makes the process tree TestFollowedPruned follows, once it reads
// a byte on stdin (the tracer is ready): children that end at once, each
// after forking one of its own, all reaped; children that live on; and a
// child whose main thread ends while another lives on. It prints the pids
// of those still alive, then waits, as they all do, for stdin to end.
const forksSource = `#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *wait_stdin(void *arg)
{
	char c;
	while (read(0, &c, 1) > 0)
		;
	return arg;
}

int main(int argc, char **argv)
{
	int brief = atoi(argv[1]), lasting = atoi(argv[2]);
	char c;

	if (argc != 3 || read(0, &c, 1) != 1)
		return 2;
	for (int i = 0; i < brief; i++) {
		pid_t p = fork();
		if (p == 0) {
			pid_t g = fork();
			if (g == 0)
				_exit(0);
			waitpid(g, NULL, 0);
			_exit(0);
		}
		waitpid(p, NULL, 0);
	}
	for (int i = 0; i < lasting; i++) {
		pid_t p = fork();
		if (p == 0) {
			wait_stdin(NULL);
			_exit(0);
		}
		printf("%d ", p);
	}
	pid_t p = fork();
	if (p == 0) {
		pthread_t th;
		pthread_create(&th, NULL, wait_stdin, NULL);
		pthread_exit(NULL);
	}
	printf("%d\n", p);
	fflush(stdout);
	wait_stdin(NULL);
	while (wait(NULL) > 0)
		;
	return 0;
}
`

// A process leaves the followed set when it ends, so that the set holds
// exactly the processes alive: not the hundreds that came and went, and
// not a process whose main thread ended while another thread of it runs
// (it still runs traced code, and may still fork).
func TestFollowedPruned(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "forks.c"), filepath.Join(dir, "forks")
	if err := os.WriteFile(src, []byte(forksSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O2", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: gcc: %v\n%s", err, out)
	}
	const brief, lasting = 200, 3
	cmd := exec.Command(bin, strconv.Itoa(brief), strconv.Itoa(lasting))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	root := cmd.Process.Pid

	tr, err := Open(Options{Pid: root, FollowForks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := io.WriteString(stdin, "g"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read the live children's pids: %v", err)
	}
	var want []int
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pids %q: %v", line, err)
		}
		want = append(want, pid)
	}
	threaded := want[len(want)-1] // printed last
	want = append(want, root)
	slices.Sort(want)
	waitLeaderGone(t, threaded)

	got, err := tr.Followed()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("followed %v after %d processes came and went, want the %d alive: %v", got, 2*brief, len(want), want)
	}

	// Every process ends: none is left.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("forks: %v", err)
	}
	if got, err := tr.Followed(); err != nil || len(got) != 0 {
		t.Errorf("followed %v (%v) once every process ended, want none", got, err)
	}
	if lost, err := tr.Counters(); err != nil || lost.Unfollowed != 0 {
		t.Errorf("unfollowed %d (%v), want 0", lost.Unfollowed, err)
	}
}

// waitLeaderGone waits until pid's main thread has ended (it shows as a
// zombie) while another of its threads runs.
func waitLeaderGone(t *testing.T, pid int) {
	t.Helper()
	state := func(stat []byte) byte {
		if j := strings.LastIndexByte(string(stat), ')'); j >= 0 && j+2 < len(stat) {
			return stat[j+2]
		}
		return 0
	}
	for i := 0; ; i++ {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		others := 0
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			if ts, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name())); err == nil && task.Name() != strconv.Itoa(pid) && state(ts) != 'Z' {
				others++
			}
		}
		if state(stat) == 'Z' && others == 1 {
			return
		}
		if i == 500 {
			t.Fatalf("process %d: no sign after 5 s of a main thread ended and another running (%s; %d others)", pid, stat, others)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
