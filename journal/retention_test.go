package journal

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRetentionWaitsForConsumersAndAge(t *testing.T) {
	dir := t.TempDir()
	clock := newClock(testEpoch)
	opts := Options{Now: clock.Now, Retention: time.Hour}
	j := openTest(t, dir, opts)
	write := func(from, to byte) {
		for i := from; i <= to; i++ {
			appendOp(t, j, entry(i))
		}
		rollover(t, j)
	}
	closed := func() []string { return files(t, dir, closedSuffix) }
	setConsumer := func(name string, seq uint64) {
		t.Helper()
		if err := j.SetConsumer(name, seq); err != nil {
			t.Fatal(err)
		}
	}

	write(1, 3)
	clock.Advance(10 * time.Minute)
	write(4, 6)
	setConsumer("a", 2)
	setConsumer("b", 6)

	clock.Advance(2 * time.Hour)
	rollover(t, j)
	if got := closed(); len(got) != 2 {
		t.Fatalf("deleted segments consumer a has not passed: %v", got)
	}

	setConsumer("a", 3)
	rollover(t, j)
	if got := closed(); !slices.Equal(got, []string{closedName(4, 6)}) {
		t.Fatalf("after a passed 3: %v", got)
	}

	setConsumer("a", 6)
	write(7, 7) // sealed now: too young to go
	if got := closed(); !slices.Equal(got, []string{closedName(7, 7)}) {
		t.Fatalf("after a passed 6: %v", got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j = openTest(t, dir, opts)
	if got, want := j.Consumers(), map[string]uint64{"a": 6, "b": 6}; !maps.Equal(got, want) {
		t.Fatalf("consumers after reopen %v, want %v", got, want)
	}
	setConsumer("a", 7)
	setConsumer("b", 7)
	rollover(t, j)
	if got := closed(); len(got) != 1 {
		t.Fatalf("deleted a segment younger than the retention: %v", got)
	}
	if err := j.RemoveConsumer("a"); err != nil {
		t.Fatal(err)
	}
	if err := j.RemoveConsumer("b"); err != nil {
		t.Fatal(err)
	}
	if err := j.RemoveConsumer("never-registered"); err != nil {
		t.Fatal(err)
	}
	if got := j.Consumers(); len(got) != 0 {
		t.Fatalf("consumers after removal %v", got)
	}
	clock.Advance(61 * time.Minute)
	rollover(t, j)
	if got := closed(); len(got) != 0 {
		t.Fatalf("with no consumer, an old segment was kept: %v", got)
	}
	if got := appendOp(t, j, entry(8)); got.Seq != 8 {
		t.Fatalf("seq %d after retention emptied the journal", got.Seq)
	}
}

func TestConsumersFile(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{})
	if err := j.SetConsumer("", 1); err == nil {
		t.Fatal("empty consumer name accepted")
	}
	if err := j.SetConsumer("mirror-1", 42); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, consumersFile))
	if err != nil {
		t.Fatal(err)
	}
	var st consumersState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != 1 || !maps.Equal(st.Consumers, map[string]uint64{"mirror-1": 42}) {
		t.Fatalf("consumers.json %s", b)
	}
	if tmp := files(t, dir, ".tmp"); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	got := j.Consumers()
	got["mirror-1"] = 0
	if j.Consumers()["mirror-1"] != 42 {
		t.Fatal("Consumers returned the journal's own map")
	}
}

func TestOpenRefusesDamagedConsumersFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, consumersFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if j, err := Open(Options{Dir: dir}); err == nil {
		j.Close()
		t.Fatal("open accepted a damaged consumers.json")
	}
}
