package config

import (
	"fmt"
	"strconv"
	"strings"
)

// suggest returns ` (did you mean "x"?)` for the candidate closest to
// name within edit distance 2, or "".
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if d < bestDist && d < len(name) && (d < 2 || strings.EqualFold(name[:1], c[:1])) {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// suggestApp is suggest for app names; with no close match it lists the
// apps when there are few.
func suggestApp(name string, apps []string) string {
	if s := suggest(name, apps); s != "" {
		return s
	}
	if len(apps) == 0 || len(apps) > 5 {
		return ""
	}
	quoted := make([]string, len(apps))
	for i, a := range apps {
		quoted[i] = strconv.Quote(a)
	}
	return fmt.Sprintf(" (known apps: %s)", strings.Join(quoted, ", "))
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
