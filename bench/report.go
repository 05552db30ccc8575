package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"wspush/bench/internal/bclient"
	"wspush/bench/internal/render"
	"wspush/bench/internal/scenario"
)

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("o", "", "write the markdown here (default stdout)")
	img := fs.String("img", "docs/img", "directory for the bench-*.png charts (\"\" = none)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	files := fs.Args()
	if len(files) == 0 {
		files, _ = filepath.Glob("bench/results/*.json")
	}
	if *out != "" {
		return writeReport(*out, *img, files)
	}
	fl, err := loadAll(files)
	if err != nil {
		return err
	}
	if *img != "" {
		if _, err := render.Charts(*img, fl); err != nil {
			return err
		}
	}
	return render.Markdown(os.Stdout, fl, "img")
}

// loadAll reads result files; files of another schema (raw wsload results
// kept in bench/results) are skipped with a note.
func loadAll(paths []string) ([]*scenario.File, error) {
	var fl []*scenario.File
	for _, p := range paths {
		f, err := scenario.LoadFile(p)
		if errors.Is(err, scenario.ErrNotWsbench) {
			fmt.Fprintf(os.Stderr, "wsbench: skipping %s (not a wsbench result)\n", p)
			continue
		}
		if err != nil {
			return nil, err
		}
		fl = append(fl, f)
	}
	return fl, nil
}

// writeReport renders files into the markdown file md and charts into img.
func writeReport(md, img string, paths []string) error {
	fl, err := loadAll(paths)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(md), img)
	if err != nil {
		rel = img
	}
	if img != "" {
		if err := os.MkdirAll(img, 0o755); err != nil {
			return fmt.Errorf("wsbench: %w", err)
		}
		if _, err := render.Charts(img, fl); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	if err := render.Markdown(&b, fl, rel); err != nil {
		return err
	}
	if err := os.WriteFile(md, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	fmt.Fprintf(os.Stderr, "wsbench: wrote %s from %d result file(s)\n", md, len(fl))
	return nil
}

// cmdBcast is the broadcast client child process (see package bclient).
func cmdBcast(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("__bcast", flag.ContinueOnError)
	var c bclient.Config
	out := fs.String("out", "", "result JSON path")
	fs.StringVar(&c.URL, "url", "ws://127.0.0.1:9000/ws", "WebSocket URL")
	fs.StringVar(&c.Admin, "admin", "http://127.0.0.1:9500", "admin base URL")
	fs.IntVar(&c.Conns, "conns", 1000, "clients")
	fs.IntVar(&c.Count, "count", 5, "broadcasts")
	fs.IntVar(&c.Dialers, "dialers", 64, "concurrent dials")
	fs.DurationVar(&c.Wait, "wait", 5*time.Second, "longest wait per broadcast")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	res, err := bclient.Run(ctx, c)
	if res != nil && *out != "" {
		b, _ := json.MarshalIndent(res, "", " ")
		if werr := os.WriteFile(*out, b, 0o644); werr != nil {
			return fmt.Errorf("wsbench: %w", werr)
		}
	}
	return err
}
