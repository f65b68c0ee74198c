package replicator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// ControlSocket is where a mount daemon listens for status and control.
func ControlSocket(brick string) string {
	return filepath.Join(brick, gfid.StateDir, "run", "control.sock")
}

// Control operations (ControlRequest.Op).
const (
	OpStatus     = "status"
	OpCheckpoint = "checkpoint"
	OpPause      = "pause"
	OpResume     = "resume"
)

// ControlRequest is one request on the control socket.
type ControlRequest struct {
	Op     string `json:"op"`               // status, checkpoint, pause, resume
	Target string `json:"target,omitempty"` // pause, resume: as in TargetStatus.Target
}

// ControlResponse answers it.
type ControlResponse struct {
	OK         bool           `json:"ok"`
	Error      string         `json:"error,omitempty"`
	Status     []TargetStatus `json:"status,omitempty"`
	Checkpoint time.Time      `json:"checkpoint,omitzero"`
}

const (
	maxRequest  = 64 << 10 // bytes; a request is a few dozen
	maxResponse = 64 << 20
	// How long a client has to send its request, and the daemon to write
	// the answer: a stuck client cannot pin a handler longer.
	ioTimeout = 5 * time.Second
	// Paths at least this long are bound/connected through /proc/self/fd
	// (sun_path holds 108 bytes with its NUL).
	maxSockPath = 100
)

// sockAddr returns an address for path that fits a sockaddr_un: a long
// path is reached through /proc/self/fd of its directory, which must stay
// open (until release) while the address is bound or connected.
func sockAddr(path string) (addr string, release func(), err error) {
	if len(path) < maxSockPath {
		return path, func() {}, nil
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	addr = "/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path)
	if len(addr) >= maxSockPath+8 {
		unix.Close(fd)
		return "", nil, fmt.Errorf("socket name %q too long", filepath.Base(path))
	}
	return addr, func() { unix.Close(fd) }, nil
}

type controlServer struct {
	l    *net.UnixListener
	path string
	fi   os.FileInfo // the socket file we bound, removed by Close only if still there
	c    Controller
	log  *zap.Logger

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// ServeControl serves c on a unix socket at path, mode 0600 (only the
// daemon's user, normally root, may control it), one JSON request and one
// JSON response per connection, connections handled concurrently. A
// socket file left by a daemon that died is replaced; one a live process
// still accepts on is an error. Close stops listening, waits for the
// requests in progress and removes the socket file.
func ServeControl(path string, c Controller, log *zap.Logger) (io.Closer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	addr, release, err := sockAddr(path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer release()
	if _, err := os.Lstat(path); err == nil {
		if conn, err := net.DialTimeout("unix", addr, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("control socket %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil { // stale, from a daemon that was killed
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
	}
	// The process umask is not narrowed around bind: it is process-wide
	// and the FUSE server may be creating files right now. The run
	// directory is 0700 and the socket is chmod'ed at once.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// Go would unlink the bind address on Close; through /proc/self/fd
	// that name no longer means the socket then. Close removes path.
	l.SetUnlinkOnClose(false)
	fi, err := os.Lstat(path)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	s := &controlServer{l: l, path: path, fi: fi, c: c, log: log, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *controlServer) accept() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		conn, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: keep serving once it passes.
			s.log.Warn("control socket: accept", zap.Error(err))
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		conn.SetReadDeadline(time.Now().Add(ioTimeout))
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				conn.Close()
			}()
			s.handle(conn)
		}()
	}
}

func (s *controlServer) handle(conn net.Conn) {
	var req ControlRequest
	var resp ControlResponse
	lr := &io.LimitedReader{R: conn, N: maxRequest}
	if err := json.NewDecoder(lr).Decode(&req); err != nil {
		if lr.N <= 0 {
			resp.Error = fmt.Sprintf("bad request: larger than %d bytes", maxRequest)
		} else {
			resp.Error = "bad request: " + err.Error()
		}
		s.log.Debug("control socket: bad request", zap.String("error", resp.Error))
	} else {
		if err := s.do(req, &resp); err != nil {
			resp.Error = err.Error()
		}
		if req.Op != OpStatus {
			s.log.Info("control request", zap.String("op", req.Op), zap.String("target", req.Target), zap.String("error", resp.Error))
		}
	}
	resp.OK = resp.Error == ""
	conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := json.NewEncoder(conn).Encode(&resp); err != nil {
		s.log.Debug("control socket: write response", zap.Error(err))
	}
}

// do runs one request; a panic in the controller fails the request, not
// the daemon.
func (s *controlServer) do(req ControlRequest, resp *ControlResponse) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control request panicked", zap.String("op", req.Op), zap.Any("panic", r), zap.Stack("stack"))
			err = fmt.Errorf("internal error in %s: %v", req.Op, r)
		}
	}()
	switch req.Op {
	case OpStatus:
		resp.Status = s.c.Status()
	case OpCheckpoint:
		resp.Checkpoint, err = s.c.Checkpoint()
	case OpPause, OpResume:
		if req.Target == "" {
			return fmt.Errorf("%s needs a target", req.Op)
		}
		if req.Op == OpPause {
			return s.c.Pause(req.Target)
		}
		return s.c.Resume(req.Target)
	default:
		return fmt.Errorf("unknown request %q (known: status, checkpoint, pause, resume)", req.Op)
	}
	return err
}

// Close stops listening, unblocks clients that have not sent their
// request, waits for the requests in progress and removes the socket file
// (if it is still the one bound).
func (s *controlServer) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.SetReadDeadline(time.Now())
		}
		s.mu.Unlock()
		s.err = s.l.Close()
		s.wg.Wait()
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.fi) {
			os.Remove(s.path)
		}
	})
	return s.err
}

// NoDaemonError says that nothing serves a brick's control socket.
type NoDaemonError struct{ Brick string }

func (e *NoDaemonError) Error() string {
	return fmt.Sprintf("no replfs daemon is serving %s (is it mounted?)", e.Brick)
}

// Request sends one request to the daemon serving brick and returns its
// answer; a request the daemon refused is an error with the daemon's
// text. timeout bounds the whole exchange (0: no bound).
func Request(brick string, req ControlRequest, timeout time.Duration) (ControlResponse, error) {
	var resp ControlResponse
	path := ControlSocket(brick)
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	addr, release, err := sockAddr(path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return resp, &NoDaemonError{brick}
		}
		return resp, fmt.Errorf("control socket %s: %w", path, err)
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("unix", addr)
	release() // connected (or not): the name is no longer needed
	if err != nil {
		switch {
		case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ECONNREFUSED):
			return resp, &NoDaemonError{brick}
		case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
			return resp, fmt.Errorf("control socket %s: permission denied (only the daemon's user, normally root, may use it)", path)
		}
		return resp, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	if err := json.NewEncoder(conn).Encode(&req); err != nil {
		return resp, fmt.Errorf("control socket %s: send: %w", path, err)
	}
	if err := json.NewDecoder(io.LimitReader(conn, maxResponse)).Decode(&resp); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return resp, fmt.Errorf("control socket %s: the daemon closed the connection without answering", path)
		}
		return resp, fmt.Errorf("control socket %s: %w", path, err)
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "request failed"
		}
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}
