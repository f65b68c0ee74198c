package replicator

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeController is a Controller over a fixed set of targets.
type fakeController struct {
	mu         sync.Mutex
	targets    []TargetStatus
	checkpoint time.Time
	calls      []string
}

func (f *fakeController) Status() []TargetStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TargetStatus(nil), f.targets...)
}

func (f *fakeController) Checkpoint() (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkpoint = time.Now()
	for i := range f.targets {
		f.targets[i].Checkpoint, f.targets[i].CheckpointCompleted = f.checkpoint, false
	}
	return f.checkpoint, nil
}

func (f *fakeController) Pause(target string) error  { return f.set(target, StatePaused) }
func (f *fakeController) Resume(target string) error { return f.set(target, StateActive) }

func (f *fakeController) set(target string, s State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, string(s)+" "+target)
	for i := range f.targets {
		if f.targets[i].Target == target {
			f.targets[i].State = s
			return nil
		}
	}
	return fmt.Errorf("no target %q", target)
}

func newFake() *fakeController {
	return &fakeController{targets: []TargetStatus{
		{Target: "/mnt/m1", Kind: "mirror", State: StateActive, Crawl: CrawlChangelog,
			LastSynced: time.Unix(1700000000, 5).UTC(), Lag: 1200 * time.Millisecond, Cursor: 42,
			PendingEntry: 1, PendingData: 2, PendingMeta: 3, Behind: 7, Failures: 1,
			LastError: "boom", LastErrorTime: time.Unix(1700000001, 0).UTC(),
			BytesTransferred: 3 << 20, FilesTransferred: 12},
		{Target: "/mnt/m2", Kind: "mirror", State: StateFaulty, Crawl: CrawlHybrid},
	}}
}

// brick returns a temporary brick directory (only .replfs/run is needed).
func brick(t *testing.T) string {
	t.Helper()
	b := t.TempDir()
	if err := os.MkdirAll(filepath.Join(b, ".replfs", "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	return b
}

func serve(t *testing.T, b string, c Controller) io.Closer {
	t.Helper()
	s, err := ServeControl(ControlSocket(b), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestControlSocketPath(t *testing.T) {
	if got, want := ControlSocket("/x/brick"), "/x/brick/.replfs/run/control.sock"; got != want {
		t.Errorf("ControlSocket = %q, want %q", got, want)
	}
}

func TestControlStatus(t *testing.T) {
	b := brick(t)
	f := newFake()
	serve(t, b, f)
	fi, err := os.Lstat(ControlSocket(b))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	resp, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.OK || len(resp.Status) != 2 {
		t.Fatalf("status response %+v", resp)
	}
	got, want := resp.Status[0], f.targets[0]
	if !got.LastSynced.Equal(want.LastSynced) || !got.LastErrorTime.Equal(want.LastErrorTime) {
		t.Errorf("times: got %v %v, want %v %v", got.LastSynced, got.LastErrorTime, want.LastSynced, want.LastErrorTime)
	}
	got.LastSynced, got.LastErrorTime = want.LastSynced, want.LastErrorTime
	if got != want {
		t.Errorf("status[0] = %+v\nwant %+v", got, want)
	}
	if resp.Status[1].Target != "/mnt/m2" || resp.Status[1].State != StateFaulty || resp.Status[1].Crawl != CrawlHybrid {
		t.Errorf("status[1] = %+v", resp.Status[1])
	}
}

func TestControlCheckpoint(t *testing.T) {
	b := brick(t)
	f := newFake()
	serve(t, b, f)
	before := time.Now()
	resp, err := Request(b, ControlRequest{Op: OpCheckpoint}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Checkpoint.Equal(f.checkpoint) || resp.Checkpoint.Before(before.Add(-time.Second)) {
		t.Errorf("checkpoint %v, controller set %v", resp.Checkpoint, f.checkpoint)
	}
	st, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Status {
		if !s.Checkpoint.Equal(resp.Checkpoint) || s.CheckpointCompleted {
			t.Errorf("%s: checkpoint %v completed %v", s.Target, s.Checkpoint, s.CheckpointCompleted)
		}
	}
}

func TestControlPauseResume(t *testing.T) {
	b := brick(t)
	f := newFake()
	serve(t, b, f)
	if _, err := Request(b, ControlRequest{Op: OpPause, Target: "/mnt/m1"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if f.Status()[0].State != StatePaused {
		t.Errorf("after pause: %s", f.Status()[0].State)
	}
	if _, err := Request(b, ControlRequest{Op: OpResume, Target: "/mnt/m1"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if f.Status()[0].State != StateActive {
		t.Errorf("after resume: %s", f.Status()[0].State)
	}
	for _, op := range []string{OpPause, OpResume} {
		resp, err := Request(b, ControlRequest{Op: op, Target: "/nope"}, 5*time.Second)
		if err == nil || err.Error() != `no target "/nope"` || resp.OK {
			t.Errorf("%s of an unknown target: %v (%+v)", op, err, resp)
		}
		if _, err := Request(b, ControlRequest{Op: op}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "needs a target") {
			t.Errorf("%s without a target: %v", op, err)
		}
	}
	if _, err := Request(b, ControlRequest{Op: "frobnicate"}, 5*time.Second); err == nil || !strings.Contains(err.Error(), `unknown request "frobnicate"`) {
		t.Errorf("unknown op: %v", err)
	}
	if want := []string{"Paused /mnt/m1", "Active /mnt/m1", "Paused /nope", "Active /nope"}; fmt.Sprint(f.calls) != fmt.Sprint(want) {
		t.Errorf("controller calls %q, want %q", f.calls, want)
	}
}

func TestControlLongPath(t *testing.T) {
	b := t.TempDir()
	for len(ControlSocket(b)) <= 130 {
		b = filepath.Join(b, "a-rather-long-directory-name")
	}
	if err := os.MkdirAll(filepath.Join(b, ".replfs", "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := serve(t, b, newFake())
	fi, err := os.Lstat(ControlSocket(b))
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket at the long path: %v %v", fi, err)
	}
	resp, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second)
	if err != nil || len(resp.Status) != 2 {
		t.Fatalf("status over a %d-byte path: %+v %v", len(ControlSocket(b)), resp, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(ControlSocket(b)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	var nd *NoDaemonError
	if _, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second); !errors.As(err, &nd) {
		t.Errorf("after Close: %v", err)
	}
}

func TestControlStaleSocket(t *testing.T) {
	b := brick(t)
	path := ControlSocket(b)
	// A daemon killed -9 leaves its socket file behind.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	_, err = Request(b, ControlRequest{Op: OpStatus}, 5*time.Second)
	if want := "no replfs daemon is serving " + b + " (is it mounted?)"; err == nil || err.Error() != want {
		t.Errorf("stale socket: %v, want %q", err, want)
	}
	serve(t, b, newFake())
	if _, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestControlSocketInUse(t *testing.T) {
	b := brick(t)
	serve(t, b, newFake())
	if s, err := ServeControl(ControlSocket(b), newFake(), nil); err == nil || !strings.Contains(err.Error(), "in use") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second ServeControl on a live socket: %v", err)
	}
	if _, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second); err != nil {
		t.Fatalf("first server after a refused second one: %v", err)
	}
}

func TestControlNoDaemon(t *testing.T) {
	for _, b := range []string{brick(t), filepath.Join(t.TempDir(), "missing")} {
		_, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second)
		want := "no replfs daemon is serving " + b + " (is it mounted?)"
		var nd *NoDaemonError
		if err == nil || err.Error() != want || !errors.As(err, &nd) {
			t.Errorf("%s: %v, want %q", b, err, want)
		}
	}
}

func TestControlCloseRemovesSocket(t *testing.T) {
	b := brick(t)
	s := serve(t, b, newFake())
	// A client that connects and says nothing must not hold Close up.
	conn, err := net.Dial("unix", ControlSocket(b))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with an idle client", d)
	}
	if _, err := os.Lstat(ControlSocket(b)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestControlBadRequests(t *testing.T) {
	b := brick(t)
	serve(t, b, newFake())
	exchange := func(req string) string {
		t.Helper()
		conn, err := net.Dial("unix", ControlSocket(b))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		go io.WriteString(conn, req) // may be cut short when the server answers
		out, err := io.ReadAll(conn)
		if errors.Is(err, syscall.ECONNRESET) {
			// The server closed with part of the request unread.
			return "reset"
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if out := exchange("not json\n"); !strings.Contains(out, `"ok":false`) || !strings.Contains(out, "bad request") {
		t.Errorf("garbage: %s", out)
	}
	big := `{"op":"status","target":"` + strings.Repeat("x", 2*maxRequest) + `"}`
	if out := exchange(big); out != "reset" && (!strings.Contains(out, `"ok":false`) || !strings.Contains(out, "larger than")) {
		t.Errorf("oversized request: %.200s", out)
	}
	// Concurrent requests are served.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			if _, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

type panicky struct{ *fakeController }

func (*panicky) Checkpoint() (time.Time, error) { panic("oops") }

func TestControlPanicFailsRequest(t *testing.T) {
	b := brick(t)
	serve(t, b, &panicky{newFake()})
	if _, err := Request(b, ControlRequest{Op: OpCheckpoint}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "internal error in checkpoint: oops") {
		t.Errorf("panicking checkpoint: %v", err)
	}
	if _, err := Request(b, ControlRequest{Op: OpStatus}, 5*time.Second); err != nil {
		t.Errorf("status after a panic: %v", err)
	}
}
