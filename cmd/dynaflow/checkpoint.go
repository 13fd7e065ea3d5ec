package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Checkpoints are small JSON files, replaced whole (written beside, then renamed over), so that
// one is always either the old state or the new, whenever the process dies.

// saveCheckpoint writes v to path atomically.
func saveCheckpoint(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// loadCheckpoint reads path into v; found is false when there is no file.
func loadCheckpoint(path string, v any) (found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("checkpoint %s is damaged: %w", path, err)
	}
	return true, nil
}

// checkStart enforces the rules for starting over or resuming: with resume, a checkpoint must
// exist; without, none may (an interrupted run is there, and starting over would lose its place).
func checkStart(path string, resume, found bool) error {
	switch {
	case resume && !found:
		return fmt.Errorf("--resume: there is no checkpoint %s to resume from", path)
	case !resume && found:
		return fmt.Errorf("an interrupted run left the checkpoint %s: pass --resume to continue it, or delete the file to start over", path)
	}
	return nil
}
