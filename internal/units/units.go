// Package units writes byte counts for people, with one spelling in
// errors, logs and tables: binary units, one decimal ("1.5 KiB").
package units

import "strconv"

// Bytes writes n bytes with a binary unit: "512 B", "1.5 KiB", "64.0 MiB",
// "2.0 GiB". For prose and error messages.
func Bytes(n float64) string { return format(n, " ") }

// BytesCompact is Bytes without the space ("1.5KiB"): for table cells and
// log lines whose fields are separated by spaces.
func BytesCompact(n float64) string { return format(n, "") }

func format(n float64, sep string) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(n/(1<<30), 'f', 1, 64) + sep + "GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(n/(1<<20), 'f', 1, 64) + sep + "MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(n/(1<<10), 'f', 1, 64) + sep + "KiB"
	}
	return strconv.FormatFloat(n, 'f', 0, 64) + sep + "B"
}
