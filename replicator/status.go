package replicator

import "time"

// State is where a worker stands.
type State string

const (
	StateInitializing State = "Initializing"
	StateActive       State = "Active"
	StatePaused       State = "Paused"
	StateFaulty       State = "Faulty"
	StateStopped      State = "Stopped"
)

// Crawl is how a worker finds what to replicate.
type Crawl string

const (
	CrawlChangelog Crawl = "Changelog" // live: sealed segments after the cursor
	CrawlHistory   Crawl = "History"   // catch-up from retained segments
	CrawlHybrid    Crawl = "Hybrid"    // walk of the brick (first sync, or a journal gap)
)

// TargetStatus is one target's row in `replfs status`.
type TargetStatus struct {
	Target string `json:"target"` // the target's path or address, as configured
	Kind   string `json:"kind"`   // "mirror", ...
	State  State  `json:"state"`
	Crawl  Crawl  `json:"crawl"`

	// LastSynced is the journal time up to which the target is complete
	// (its stime); zero before the first complete sync.
	LastSynced time.Time     `json:"last_synced"`
	Lag        time.Duration `json:"lag_ns"` // now - LastSynced (0 before the first sync)
	Cursor     uint64        `json:"cursor"` // last journal seq applied

	PendingEntry int `json:"pending_entry"` // records read and not yet applied, by kind
	PendingData  int `json:"pending_data"`
	PendingMeta  int `json:"pending_meta"`
	// Behind is the number of journal records written after Cursor
	// (applied or not yet sealed).
	Behind uint64 `json:"behind"`

	Failures         uint64    `json:"failures"` // entries that could not be applied after retries
	LastError        string    `json:"last_error,omitempty"`
	LastErrorTime    time.Time `json:"last_error_time,omitzero"`
	BytesTransferred uint64    `json:"bytes_transferred"`
	FilesTransferred uint64    `json:"files_transferred"`

	Checkpoint          time.Time `json:"checkpoint,omitzero"`              // when the last checkpoint was set
	CheckpointCompleted bool      `json:"checkpoint_completed"`             // the target has everything written before it
	CheckpointDone      time.Time `json:"checkpoint_completed_at,omitzero"` // when that became true

	// LastVerify is the result of the last scheduled verify (mount option
	// verify-interval), nil when none has run.
	LastVerify *VerifyStatus `json:"last_verify,omitempty"`
}

// VerifyStatus is the outcome of one scheduled verify of a target.
type VerifyStatus struct {
	Time        time.Time          `json:"time"` // when it finished
	Took        string             `json:"took"`
	InSync      bool               `json:"in_sync"`
	Differences int64              `json:"differences"`
	ByKind      map[DiffKind]int64 `json:"by_kind"`
	Errors      int64              `json:"errors"` // entries that could not be read
	Error       string             `json:"error,omitempty"`
}

// Controller is what the control socket serves: the mount daemon's
// replicator.
type Controller interface {
	Status() []TargetStatus
	// Checkpoint marks now: every change made before it is to reach every
	// target; status then shows when each target has it. It returns the
	// checkpoint time.
	Checkpoint() (time.Time, error)
	// Pause and Resume stop and restart one target's worker (target as in
	// TargetStatus.Target). Pausing keeps its journal segments.
	Pause(target string) error
	Resume(target string) error
}
