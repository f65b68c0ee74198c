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

	"github.com/replfs/replfs/internal/gfid"
)

// ControlSocket is where a mount daemon listens for status and control.
func ControlSocket(brick string) string {
	return filepath.Join(brick, gfid.StateDir, "run", "control.sock")
}

// ControlRequest is one request on the control socket.
type ControlRequest struct {
	Op     string `json:"op"` // status, checkpoint, pause, resume
	Target string `json:"target,omitempty"`
}

// ControlResponse answers it.
type ControlResponse struct {
	OK         bool           `json:"ok"`
	Error      string         `json:"error,omitempty"`
	Status     []TargetStatus `json:"status,omitempty"`
	Checkpoint time.Time      `json:"checkpoint,omitzero"`
}

const maxRequest = 64 << 10

// sockAddr returns an address for path that fits a sockaddr_un (108
// bytes): a long path is reached through /proc/self/fd of its directory.
func sockAddr(path string) (addr string, closeDir func(), err error) {
	if len(path) < 100 {
		return path, func() {}, nil
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + filepath.Base(path), func() { d.Close() }, nil
}

type controlServer struct {
	l    net.Listener
	path string
	wg   sync.WaitGroup
}

// ServeControl serves c on a unix socket at path (mode 0600).
func ServeControl(path string, c Controller, log *zap.Logger) (io.Closer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	os.Remove(path) // stale, from a daemon that was killed
	addr, done, err := sockAddr(path)
	if err != nil {
		return nil, err
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", addr)
	syscall.Umask(old)
	done()
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	s := &controlServer{l: l, path: path}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(conn, c, log)
			}()
		}
	}()
	return s, nil
}

func (s *controlServer) handle(conn net.Conn, c Controller, log *zap.Logger) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req ControlRequest
	var resp ControlResponse
	if err := json.NewDecoder(io.LimitReader(conn, maxRequest)).Decode(&req); err != nil {
		resp.Error = "bad request: " + err.Error()
	} else {
		var err error
		switch req.Op {
		case "status":
			resp.Status = c.Status()
		case "checkpoint":
			resp.Checkpoint, err = c.Checkpoint()
		case "pause":
			err = c.Pause(req.Target)
		case "resume":
			err = c.Resume(req.Target)
		default:
			err = fmt.Errorf("unknown request %q", req.Op)
		}
		if err != nil {
			resp.Error = err.Error()
		}
		if req.Op != "status" {
			log.Info("control request", zap.String("op", req.Op), zap.String("target", req.Target), zap.String("error", resp.Error))
		}
	}
	resp.OK = resp.Error == ""
	json.NewEncoder(conn).Encode(&resp)
}

func (s *controlServer) Close() error {
	err := s.l.Close()
	s.wg.Wait()
	os.Remove(s.path)
	return err
}

// Request sends one request to the daemon serving brick.
func Request(brick string, req ControlRequest, timeout time.Duration) (ControlResponse, error) {
	var resp ControlResponse
	path := ControlSocket(brick)
	addr, done, err := sockAddr(path)
	if err != nil {
		return resp, fmt.Errorf("no replfs daemon is serving %s (is it mounted?)", brick)
	}
	defer done()
	conn, err := net.DialTimeout("unix", addr, timeout)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return resp, fmt.Errorf("no replfs daemon is serving %s (is it mounted?)", brick)
		}
		return resp, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(conn).Encode(&req); err != nil {
		return resp, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := json.NewDecoder(io.LimitReader(conn, 64<<20)).Decode(&resp); err != nil {
		return resp, fmt.Errorf("control socket %s: %w", path, err)
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}
