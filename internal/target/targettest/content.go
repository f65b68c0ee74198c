package targettest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

func testSetMeta(t *testing.T, f *fixture) {
	f.open()
	a := f.attr(unix.S_IFREG | 0o644)
	x1 := target.Xattrs{"user.targettest.one": []byte("1")}
	g := f.fileX(gfid.Root, "f", []byte("f"), a, x1)
	stat := func(what string) target.Attr {
		st, err := f.tg.Stat(f.ctx, g)
		if err != nil {
			t.Fatalf("Stat after %s: %v", what, err)
		}
		return st
	}
	// Each step offers new values for everything and asks for one: the
	// rest must stay.
	b := a
	b.Mode, b.Mtime, b.Atime = unix.S_IFREG|0o600, a.Mtime+5e9, a.Atime+5e9
	offer := func(mode uint32, dt int64) target.Attr {
		o := b
		o.Mode, o.Mtime, o.Atime = unix.S_IFREG|mode, b.Mtime+dt, b.Atime+dt
		return o
	}
	x2 := target.Xattrs{"user.targettest.two": []byte("2")}
	steps := []struct {
		what  target.Meta
		name  string
		a     target.Attr
		check func(st target.Attr, x target.Xattrs) bool
	}{
		{target.MetaMode, "mode", b, func(st target.Attr, x target.Xattrs) bool {
			return st.Mode&0o7777 == 0o600 && st.Mtime == a.Mtime && sameXattrs(x, x1)
		}},
		{target.MetaXattrs, "xattrs", offer(0o777, 7e9), func(st target.Attr, x target.Xattrs) bool {
			return st.Mode&0o7777 == 0o600 && st.Mtime == a.Mtime && sameXattrs(x, x2)
		}},
		{target.MetaTimes, "times", offer(0o777, 0), func(st target.Attr, x target.Xattrs) bool {
			return st.Mode&0o7777 == 0o600 && st.Mtime == b.Mtime && st.Atime == b.Atime && sameXattrs(x, x2)
		}},
		{target.MetaOwner, "owner", offer(0o777, 9e9), func(st target.Attr, x target.Xattrs) bool {
			return st.UID == b.UID && st.GID == b.GID && st.Mode&0o7777 == 0o600 && st.Mtime == b.Mtime
		}},
	}
	for _, s := range steps {
		x := x2
		if s.what != target.MetaXattrs {
			x = target.Xattrs{"user.targettest.not-asked": []byte("!")}
		}
		if err := f.tg.SetMeta(f.ctx, g, s.a, x, s.what); err != nil {
			t.Fatalf("SetMeta of the %s: %v", s.name, err)
		}
		st := stat(s.name)
		x, err := f.tg.Xattrs(f.ctx, g)
		if err != nil || !s.check(st, x) {
			t.Errorf("after SetMeta of the %s only: mode %o mtime %s atime %s owner %d:%d xattrs %s (%v)",
				s.name, st.Mode, stamp(st.Mtime), stamp(st.Atime), st.UID, st.GID, xattrString(x), err)
		}
	}
	if err := f.tg.SetMeta(f.ctx, g, f.attr(unix.S_IFDIR|0o777), nil, target.MetaAll); err == nil {
		t.Errorf("SetMeta of a file with a directory's attributes succeeded")
	}
	if st := stat("a refused SetMeta"); st.Mode&0o7777 != 0o600 {
		t.Errorf("a refused SetMeta changed the mode to %o", st.Mode)
	}
	root := f.attr(unix.S_IFDIR | 0o751)
	if err := f.tg.SetMeta(f.ctx, gfid.Root, root, nil, target.MetaAll); err != nil {
		t.Fatalf("SetMeta of the root: %v", err)
	}
	if st, err := f.tg.Stat(f.ctx, gfid.Root); err != nil || st.Mode&0o7777 != 0o751 || st.Mtime != root.Mtime {
		t.Errorf("the root after SetMeta: mode %o mtime %s, %v", st.Mode, stamp(st.Mtime), err)
	}
}

func testWriteFile(t *testing.T, f *fixture) {
	f.open()
	g := f.fileX(gfid.Root, "f", []byte("old content"), f.attr(unix.S_IFREG|0o644),
		target.Xattrs{"user.targettest.old": []byte("old")})
	d := f.dir(gfid.Root, "d")
	for _, content := range [][]byte{[]byte("new, and longer than the old content"), {}, []byte("short")} {
		a := f.attr(unix.S_IFREG | 0o600)
		a.Mtime, a.Atime, a.Size = f.when+10e9, f.when+11e9, int64(len(content))
		x := target.Xattrs{"user.targettest.new": []byte("new")}
		n, err := f.tg.WriteFile(f.ctx, g, bytesSource("new", content), a, x)
		if err != nil || n != int64(len(content)) {
			t.Fatalf("WriteFile of %d bytes: %d, %v", len(content), n, err)
		}
		st := f.lookup(gfid.Root, "f", g)
		checkAttr(t, "the rewritten file", st, made{a: a, content: content}, true)
		e := f.list(gfid.Root)["f"]
		f.content("the rewritten file", e, content)
		if !sameXattrs(e.Xattrs, x) {
			t.Errorf("the rewritten file has xattrs %s, want %s", xattrString(e.Xattrs), xattrString(x))
		}
	}
	_, err := f.tg.WriteFile(f.ctx, d, bytesSource("x", []byte("x")), f.attr(unix.S_IFREG|0o644), nil)
	if err == nil {
		t.Errorf("WriteFile of a directory succeeded")
	}
	f.names("the root", f.list(gfid.Root), "d", "f")
}

// gatedSource is a Source whose read of its last bytes waits until the
// test lets it go: what the target shows while a file is being written.
type gatedSource struct {
	b       []byte
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func (s *gatedSource) Size() int64  { return int64(len(s.b)) }
func (s *gatedSource) Name() string { return "gated" }
func (s *gatedSource) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) >= int64(len(s.b)) {
		s.once.Do(func() { close(s.reached) })
		<-s.release
	}
	return bytes.NewReader(s.b).ReadAt(p, off)
}

func testCreateInvisible(t *testing.T, f *fixture) {
	f.open()
	src := &gatedSource{b: bytes.Repeat([]byte("0123456789abcdef"), 3<<16),
		reached: make(chan struct{}), release: make(chan struct{})}
	g := gfid.New()
	done := make(chan error, 1)
	go func() {
		_, err := f.tg.CreateFile(f.ctx, gfid.Root, "new", g, src, f.attr(unix.S_IFREG|0o644), nil)
		done <- err
	}()
	select {
	case <-src.reached:
		f.absent(gfid.Root, "new")
		if names := f.readDirNames(gfid.Root); len(names) != 0 {
			t.Errorf("while the file is written the root lists %q", names)
		}
		close(src.release)
	case err := <-done:
		close(src.release)
		t.Fatalf("CreateFile returned before reading the end of its source: %v", err)
	case <-time.After(timeout):
		close(src.release)
		t.Fatalf("CreateFile did not read its source's end within %s", timeout)
	}
	if err := <-done; err != nil {
		t.Fatalf("CreateFile: %v", err)
	}
	f.content("the new file", f.list(gfid.Root)["new"], src.b)
}

// failingSource fails every read past its first 4 KiB.
type failingSource struct{ size int64 }

var errSource = errors.New("source read error (the suite's)")

func (s failingSource) Size() int64  { return s.size }
func (s failingSource) Name() string { return "failing" }
func (s failingSource) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > 4096 {
		n := max(0, 4096-off)
		clear(p[:n])
		return int(n), errSource
	}
	clear(p)
	return len(p), nil
}

func testSourceFails(t *testing.T, f *fixture) {
	f.open()
	g := gfid.New()
	a := f.attr(unix.S_IFREG | 0o644)
	if _, err := f.tg.CreateFile(f.ctx, gfid.Root, "f", g, failingSource{1 << 20}, a, nil); err == nil {
		t.Fatalf("CreateFile from a failing source succeeded")
	}
	f.absent(gfid.Root, "f")
	f.gone(g, "the file whose source failed")
	// Nothing left behind blocks a retry of the same file.
	if _, err := f.tg.CreateFile(f.ctx, gfid.Root, "f", g, bytesSource("f", []byte("second try")), a, nil); err != nil {
		t.Fatalf("CreateFile after one whose source failed: %v", err)
	}
	if _, err := f.tg.WriteFile(f.ctx, g, failingSource{1 << 20}, a, nil); err == nil {
		t.Errorf("WriteFile from a failing source succeeded")
	}
	f.content("the file after a failed WriteFile", f.list(gfid.Root)["f"], []byte("second try"))
}

func testAtomicReplace(t *testing.T, f *fixture) {
	f.open()
	contents := [][]byte{bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("bc"), 1<<19+2048)}
	sums := map[contenthash.Sum]int64{}
	for _, c := range contents {
		sums[contenthash.Bytes(c)] = int64(len(c))
	}
	g := f.fileX(gfid.Root, "big", contents[0], f.attr(unix.S_IFREG|0o644), nil)
	hasher, _ := f.tg.(target.Hasher)
	stop := make(chan struct{})
	bad := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for reads := 0; ; reads++ {
			select {
			case <-stop:
				return
			default:
			}
			if msg := readOnce(f, g, hasher, sums); msg != "" {
				bad <- msg
				return
			}
		}
	}()
	for i := 1; i <= 8; i++ {
		c := contents[i%2]
		a := f.attr(unix.S_IFREG | 0o644)
		a.Size = int64(len(c))
		if _, err := f.tg.WriteFile(f.ctx, g, bytesSource("big", c), a, nil); err != nil {
			t.Fatalf("WriteFile %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-bad:
		t.Error(msg)
	default:
	}
	f.content("big after the last WriteFile", f.list(gfid.Root)["big"], contents[0])
}

// readOnce reads big's hash as a verify would; it says what was wrong.
func readOnce(f *fixture, g gfid.GFID, hasher target.Hasher, sums map[contenthash.Sum]int64) string {
	es, err := f.tg.List(f.ctx, gfid.Root, 4<<20)
	if err != nil {
		return "List during WriteFile: " + err.Error()
	}
	for _, e := range es {
		if e.Name == "big" {
			if n, ok := sums[e.Sum]; !e.Hashed || e.HashErr != nil || !ok || n != e.N {
				return "List during WriteFile saw neither the old nor the new content: " + describe(e, false)
			}
		}
	}
	if hasher != nil {
		s, n, err := hasher.Hash(f.ctx, g, -1)
		if want, ok := sums[s]; err != nil || !ok || want != n {
			return "Hash during WriteFile saw neither the old nor the new content"
		}
	}
	return ""
}

func testListHashes(t *testing.T, f *fixture) {
	f.open()
	for name, size := range map[string]int{"empty": 0, "small": 99, "edge": 100, "large": 101} {
		f.file(gfid.Root, name, string(bytes.Repeat([]byte("x"), size)))
	}
	f.dir(gfid.Root, "dir")
	f.mk(gfid.Root, "sym", f.attr(unix.S_IFLNK|0o777), "small", nil)
	es, err := f.tg.List(f.ctx, gfid.Root, 100)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, e := range es {
		want := e.Name == "empty" || e.Name == "small"
		if e.Hashed != want {
			t.Errorf("List below 100 bytes: %s (%d bytes, type %o) hashed %v, want %v", e.Name, e.Attr.Size, e.Mode, e.Hashed, want)
		}
		if want {
			f.content(e.Name, e, bytes.Repeat([]byte("x"), int(e.Attr.Size)))
		}
	}
	es, err = f.tg.List(f.ctx, gfid.Root, 0)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, e := range es {
		if e.Hashed {
			t.Errorf("List with hashBelow 0 hashed %s", e.Name)
		}
	}
}

func testHasher(t *testing.T, f *fixture) {
	h := capability[target.Hasher](t, f.tg)
	f.open()
	content := bytes.Repeat([]byte("hash me "), 5000)
	a := f.file(gfid.Root, "a", string(content))
	empty := f.file(gfid.Root, "empty", "")
	f.dir(gfid.Root, "dir")
	for _, size := range []int64{int64(len(content)), -1} {
		s, n, err := h.Hash(f.ctx, a, size)
		if err != nil || s != contenthash.Bytes(content) || n != int64(len(content)) {
			t.Errorf("Hash(size %d): %s %d %v; want %s %d", size, s, n, err, contenthash.Bytes(content), len(content))
		}
	}
	if s, n, err := h.Hash(f.ctx, empty, 0); err != nil || s != contenthash.Bytes(nil) || n != 0 {
		t.Errorf("Hash of an empty file: %s %d %v", s, n, err)
	}
	_, _, err := h.Hash(f.ctx, gfid.New(), -1)
	wantErr(t, "Hash of an unknown gfid", err, target.ErrNotExist)
	reqs := []target.HashReq{{Name: "a", Size: int64(len(content))}, {Name: "empty", Size: -1}, {Name: "nope", Size: -1}}
	if err := h.HashDir(f.ctx, gfid.Root, reqs); err != nil {
		t.Fatalf("HashDir: %v", err)
	}
	if r := reqs[0]; r.Err != nil || r.Sum != contenthash.Bytes(content) || r.N != int64(len(content)) {
		t.Errorf("HashDir a: %s %d %v", r.Sum, r.N, r.Err)
	}
	if r := reqs[1]; r.Err != nil || r.Sum != contenthash.Bytes(nil) || r.N != 0 {
		t.Errorf("HashDir empty: %s %d %v", r.Sum, r.N, r.Err)
	}
	wantErr(t, "HashDir of a missing name", reqs[2].Err, target.ErrNotExist)
	f.content("List a", f.list(gfid.Root)["a"], content)
	if err := h.HashDir(f.ctx, gfid.New(), []target.HashReq{{Name: "a", Size: -1}}); err == nil {
		t.Errorf("HashDir of an unknown directory succeeded")
	}
}

// timeout bounds the waits of the concurrent cases.
const timeout = 30 * time.Second
