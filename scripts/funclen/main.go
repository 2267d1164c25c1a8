// Command funclen prints the longest functions outside tests and the longest
// files of a Go tree, in lines, for a review of how readable the code is.
//
//	go run ./scripts/funclen [-n 10] [dir]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type item struct {
	name  string
	lines int
}

func main() {
	n := flag.Int("n", 10, "how many functions to list")
	flag.Parse()
	root := "."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	var funcs, files []item
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "scripts") {
			return filepath.SkipDir // hidden directories, and tools like this one
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, item{path, bytes.Count(src, []byte("\n"))})
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) > 0 {
				t := fd.Recv.List[0].Type
				if s, ok := t.(*ast.StarExpr); ok {
					t = s.X
				}
				if id, ok := t.(*ast.Ident); ok {
					name = id.Name + "." + name
				}
			}
			lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			funcs = append(funcs, item{path + ": " + name, lines})
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	byLength := func(s []item) {
		sort.Slice(s, func(i, j int) bool {
			if s[i].lines != s[j].lines {
				return s[i].lines > s[j].lines
			}
			return s[i].name < s[j].name
		})
	}
	byLength(funcs)
	byLength(files)
	fmt.Println("lines  function")
	for _, f := range funcs[:min(*n, len(funcs))] {
		fmt.Printf("%5d  %s\n", f.lines, f.name)
	}
	fmt.Println("lines  file")
	for _, f := range files[:min(3, len(files))] {
		fmt.Printf("%5d  %s\n", f.lines, f.name)
	}
}
