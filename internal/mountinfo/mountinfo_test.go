package mountinfo

import "testing"

func TestParse(t *testing.T) {
	data := "36 35 98:0 / /mnt/my\\040data rw,noatime master:1 - fuse.replfs /srv/my\\040brick rw,user_id=0\n" +
		"22 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\nbroken line\n"
	got := parse(data)
	if len(got) != 2 {
		t.Fatalf("parsed %d entries: %+v", len(got), got)
	}
	if got[0] != (Entry{Device: "98:0", Mountpoint: "/mnt/my data", FSType: "fuse.replfs", Source: "/srv/my brick"}) {
		t.Errorf("entry 0 = %+v", got[0])
	}
	if got[1].Mountpoint != "/" || got[1].FSType != "ext4" {
		t.Errorf("entry 1 = %+v", got[1])
	}
}
