package bench

import (
	"fmt"
	"slices"
	"strconv"
)

// summarize turns the results of several rounds into one Result per case
// and size, in the order they were first measured: the medians over the
// rounds that produced figures, the median and range of their ratios, and
// the total of frames lost. It returns nothing for a single round.
func summarize(all []Result, rounds int) []Result {
	if rounds <= 1 {
		return nil
	}
	var order []string
	by := map[string][]Result{}
	for _, r := range all {
		k := r.Case + "/" + strconv.Itoa(r.Size)
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], r)
	}
	out := make([]Result, 0, len(order))
	for _, k := range order {
		out = append(out, summarizeOne(by[k]))
	}
	return out
}

func summarizeOne(rs []Result) Result {
	first := rs[0]
	s := Result{
		Case: first.Case, Size: first.Size, Kind: first.Kind, Impl: first.Impl,
		Policy: first.Policy, Wake: first.Wake, CCase: first.CCase, CLikeCase: first.CLikeCase,
		Summary: true,
	}
	var p50, p99, rmin []int64
	var fps, bps, ratios, likes []float64
	var lost *int64
	failed, skipped := 0, 0
	for _, r := range rs {
		switch {
		case r.Error != "":
			failed++
			s.Error = r.Error
			continue
		case r.Skipped != "":
			skipped++
			s.Skipped = r.Skipped
			continue
		}
		s.Rounds++
		if r.Kind == PingPong {
			p50, p99, rmin = append(p50, r.RTTP50), append(p99, r.RTTP99), append(rmin, r.RTTMin)
		} else {
			fps, bps = append(fps, r.FramesPerS), append(bps, r.BytesPerS)
		}
		if r.RatioToC > 0 {
			ratios = append(ratios, r.RatioToC)
		}
		if r.RatioToCLike > 0 {
			likes = append(likes, r.RatioToCLike)
		}
		if r.Lost != nil {
			if lost == nil {
				lost = new(int64)
			}
			*lost += *r.Lost
		}
	}
	if s.Rounds == 0 {
		return s // every round failed or was skipped: say why, as the last one did
	}
	s.Error, s.Skipped = "", ""
	if failed+skipped > 0 {
		s.Note = fmt.Sprintf("%d of %d rounds failed or were skipped", failed+skipped, len(rs))
	}
	s.RTTP50, s.RTTP99, s.RTTMin = median(p50), median(p99), median(rmin)
	s.FramesPerS, s.BytesPerS = median(fps), median(bps)
	s.Lost = lost
	if len(ratios) > 0 {
		s.RatioToC = median(ratios)
		s.RatioToCMin, s.RatioToCMax = slices.Min(ratios), slices.Max(ratios)
	}
	if len(likes) > 0 {
		s.RatioToCLike = median(likes)
	}
	return s
}

// median of v (the mean of the middle two for an even count); 0 if empty.
// v is sorted in place.
func median[T int64 | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
