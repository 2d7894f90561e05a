package connector

import "time"

// createdAtLayouts are the layouts openOBD's created_at has been seen in:
// ISO-8601 with milliseconds and a numeric zone without a colon, RFC 3339,
// and the form with a colon between date and time that the protos'
// comment shows.
var createdAtLayouts = []string{
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05-0700",
	time.RFC3339Nano,
	"2006-01-02:15:04:05.000-0700",
	"2006-01-02:15:04:05-0700",
}

// ParseTime parses a SessionInfo.CreatedAt text, reporting whether it could.
func ParseTime(s string) (time.Time, bool) {
	for _, layout := range createdAtLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
