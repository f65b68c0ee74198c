package journal

import "testing"

// FuzzDecode checks that Decode never panics and that whatever it accepts
// survives an Encode/Decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, tt := range codecCases() {
		f.Add(Encode(nil, &tt.rec))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(OpData), 0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		var r Record
		if err := Decode(p, &r); err != nil {
			return
		}
		var again Record
		if err := Decode(Encode(nil, &r), &again); err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", r, err)
		}
		if again != r {
			t.Fatalf("round trip changed the record\n got %+v\nwant %+v", again, r)
		}
	})
}
