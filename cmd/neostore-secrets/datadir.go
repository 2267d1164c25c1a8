package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/neostore/neostore-secrets/admin"
)

// checkDataFiles refuses to serve from a data directory, or an audit file,
// that another local user could change, as strictly as the master key file
// is checked: whoever can write the directory can replace the admin socket
// or the database, whoever can read the files reads the sealed store and
// the audit trail. The directory and the files the server keeps in it
// (secrets.db, the audit file and its rotations) must be owned by the
// server's user or root and give group and others nothing; a file there
// must not be a symbolic link. A stale admin.sock must be the server's own. An audit file kept elsewhere is held to
// the same rules, and its directory, where rotation renames files, must not
// be writable by group or others. Missing files are fine: the server
// creates them with mode 0600 (and the directory 0700).
func checkDataFiles(dataDir, auditFile string) error {
	if !modesMeanAccess {
		return nil
	}
	self := uint32(os.Geteuid())
	var files []string
	if dataDir != "" {
		fi, err := os.Stat(dataDir) // a link to the directory is fine (systemd's StateDirectory makes one)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return configError(fmt.Errorf("data directory: %w", err))
		case !fi.IsDir():
			return configError(fmt.Errorf("data directory %s is not a directory", dataDir))
		default:
			if err := checkOwner(dataDir, fi, self); err != nil {
				return err
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				return configError(fmt.Errorf("data directory %s has mode %#o, which lets group or others into it; run chmod 700 %s", dataDir, perm, dataDir))
			}
			files = append(files, filepath.Join(dataDir, databaseFile))
			// A stale socket's mode does not matter (Listen replaces it),
			// but one planted by another user must not be taken for ours.
			if err := checkOwnFile(filepath.Join(dataDir, admin.SocketName), self); err != nil {
				return err
			}
		}
	}
	if auditFile != "" {
		dir := filepath.Dir(auditFile)
		if dataDir == "" || filepath.Clean(dir) != filepath.Clean(dataDir) {
			if err := checkAuditDir(dir, self); err != nil {
				return err
			}
		}
		files = append(files, auditFile)
		rotated, _ := filepath.Glob(globEscape(auditFile) + ".*")
		for _, r := range rotated {
			if _, err := strconv.Atoi(strings.TrimPrefix(r, auditFile+".")); err == nil {
				files = append(files, r)
			}
		}
	}
	for _, path := range files {
		if err := checkPrivateFile(path, self); err != nil {
			return err
		}
	}
	return nil
}

// checkPrivateFile refuses a file that is a symbolic link, belongs to
// another user, or gives group or others any access. A missing file passes.
func checkPrivateFile(path string, self uint32) error {
	fi, err := lstatOwn(path, self)
	if fi == nil || err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return configError(fmt.Errorf("%s has mode %#o, which lets group or others read or write it; run chmod 600 %s", path, perm, path))
	}
	return nil
}

// checkOwnFile refuses a file that is a symbolic link or belongs to another
// user. A missing file passes.
func checkOwnFile(path string, self uint32) error {
	_, err := lstatOwn(path, self)
	return err
}

// lstatOwn returns path's own FileInfo (nil when it does not exist),
// refusing a symbolic link or a file another user owns.
func lstatOwn(path string, self uint32) (fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, configError(fmt.Errorf("check %s: %w", path, err))
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, configError(fmt.Errorf("%s is a symbolic link; the server does not follow links to its files (another user could point them anywhere): put the file itself there", path))
	}
	if err := checkOwner(path, fi, self); err != nil {
		return nil, err
	}
	return fi, nil
}

// checkAuditDir refuses a directory outside the data directory that holds
// the audit file when group or others may create, rename or remove files in
// it, since rotation renames the trail there.
func checkAuditDir(dir string, self uint32) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // opening the audit file will say so
	}
	if err != nil {
		return configError(fmt.Errorf("audit file directory: %w", err))
	}
	if err := checkOwner(dir, fi, self); err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return configError(fmt.Errorf("the audit file's directory %s has mode %#o, which lets group or others replace the files in it; run chmod go-w %s", dir, perm, dir))
	}
	return nil
}

// checkOwner refuses a file or directory owned by anyone but self or root.
func checkOwner(path string, fi fs.FileInfo, self uint32) error {
	uid, ok := fileOwner(fi)
	if !ok || uid == self || uid == 0 {
		return nil
	}
	return configError(fmt.Errorf("%s is owned by uid %d, not by this server's user (uid %d) or root; find out who made it, then run chown %d %s", path, uid, self, self, path))
}

// globEscape quotes the characters filepath.Glob would read as a pattern.
func globEscape(path string) string {
	var b strings.Builder
	for _, r := range path {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
