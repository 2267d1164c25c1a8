package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Browser tests of the web console in real headless Chromium (Debian's
// chromium package, which .ci/run installs). Without Chromium they skip,
// except under CI, where they fail.

const consoleClientID = "console-test"

// chromiumPath returns the browser to drive, or skips (fails under CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI: Chromium is missing (apt-get install chromium); the console's browser tests cannot run")
	}
	t.Skip("Chromium is not installed; the console's browser tests need it")
	return ""
}

// browserPage is one headless Chromium tab with what it reported: console
// errors and warnings, uncaught exceptions, log entries and CSP
// violations.
type browserPage struct {
	ctx  context.Context
	base string // the server's origin

	mu       sync.Mutex
	problems []string
}

// newBrowser starts Chromium with a fresh profile and opens a tab whose
// clock zone is Europe/Paris, so that local and UTC times differ.
func newBrowser(t *testing.T, base string) *browserPage {
	t.Helper()
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1000, 700),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	// Registered after TempDir, so it runs first: Chromium has exited
	// before its profile directory is removed.
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	p := &browserPage{ctx: ctx, base: base}
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("start Chromium: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			p.report("exception: " + ev.ExceptionDetails.Text)
		case *cdpruntime.EventConsoleAPICalled:
			if ev.Type == cdpruntime.ConsoleAPICalledTypeError || ev.Type == cdpruntime.ConsoleAPICalledTypeWarning || ev.Type == cdpruntime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p.report(fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *cdplog.EventEntryAdded:
			// A 4xx the test provokes (a validation error, a value
			// outside its window) is logged by the network source;
			// anything else is a fault of the page.
			if ev.Entry.Source != cdplog.EntrySourceNetwork && ev.Entry.Level != cdplog.EntryLevelVerbose && ev.Entry.Level != cdplog.EntryLevelInfo {
				p.report(fmt.Sprintf("log %s/%s: %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text))
			}
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	// Installed before any script of the page: every CSP violation is
	// kept where the test can read it.
	cspWatch := `window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`
	p.run(t, "prepare the tab",
		cdpCall(emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Europe/Paris"}),
		cdpCall(emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}), // the clipboard needs a focused page
		cdpCall(page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch}),
	)
	return p
}

func (p *browserPage) report(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, s)
}

// call makes an action of a protocol command of the tab.
func cdpCall[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cmd, params)
		return err
	})
}

// bounded returns a context for one step: a page that never reaches a
// state fails the test instead of hanging it.
func (p *browserPage) bounded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, 20*time.Second)
}

// run runs actions in order, within the bound.
func (p *browserPage) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := p.bounded()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fatal(t, what, err)
	}
}

func (p *browserPage) fatal(t *testing.T, what string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML("body"))
	t.Fatalf("%s: %v\npage: %s", what, err, html)
}

// get runs one action that returns a value, within the bound.
func pageGet[T any](t *testing.T, p *browserPage, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := p.bounded()
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.fatal(t, what, err)
	}
	return v
}

// eval evaluates a JavaScript expression, awaiting a promise.
func pageEval[T any](t *testing.T, p *browserPage, expr string) T {
	t.Helper()
	return pageGet(t, p, "evaluate "+expr, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

func (p *browserPage) text(t *testing.T, sel string) string {
	t.Helper()
	return pageGet(t, p, "text of "+sel, chromedp.Text(sel))
}

// clean fails the test if the page reported a CSP violation, an error or
// an exception.
func (p *browserPage) clean(t *testing.T) {
	t.Helper()
	csp := pageEval[[]string](t, p, `window.__csp || []`)
	if len(csp) > 0 {
		t.Errorf("CSP violations: %q", csp)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.problems) > 0 {
		t.Errorf("the page reported:\n%s", strings.Join(p.problems, "\n"))
	}
}

// forgotten fails unless the page no longer holds the credential, and none
// of the secrets appears in its DOM or storage.
func (p *browserPage) forgotten(t *testing.T, secrets ...string) {
	t.Helper()
	type pageState struct {
		SignedIn bool   `json:"signedIn"`
		HTML     string `json:"html"`
		Storage  int    `json:"storage"`
		Cookie   string `json:"cookie"`
	}
	state := pageEval[pageState](t, p, `import("/ui/api.js").then((api) => ({
		signedIn: api.signedIn(),
		html: document.documentElement.outerHTML + [...document.querySelectorAll("input")].map((i) => i.value).join("\n"),
		storage: localStorage.length + sessionStorage.length,
		cookie: document.cookie,
	}))`)
	if state.SignedIn {
		t.Error("the page still holds its credential")
	}
	if state.Storage != 0 || state.Cookie != "" {
		t.Errorf("the page keeps %d storage items and cookies %q, want none", state.Storage, state.Cookie)
	}
	p.noneInPage(t, state.HTML, secrets...)
}

func (p *browserPage) noneInPage(t *testing.T, html string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(html, s) {
			t.Errorf("the page still holds %q", s)
		}
	}
}

// screenshot writes docs/screenshots/name.png when UPDATE_SCREENSHOTS=1,
// so that README's pictures are made by this test.
func (p *browserPage) screenshot(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png := pageGet(t, p, "screenshot "+name, chromedp.CaptureScreenshot())
	path := filepath.Join("..", "..", "docs", "screenshots", name+".png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// setInput sets an input's value as typing would, with an input event.
func consoleSetInput(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event("input", {bubbles: true})); })()`, sel, value))
}

func consolePut(t *testing.T, base, key, name, body string) {
	t.Helper()
	if status, _, resp := do(t, "PUT", base+"/api/demo/secrets/"+name, key, body); status != http.StatusNoContent {
		t.Fatalf("PUT %s = %d %s", name, status, resp)
	}
}

// badges returns each listed key's badge text.
func (p *browserPage) badges(t *testing.T) map[string]string {
	t.Helper()
	return pageEval[map[string]string](t, p, `Object.fromEntries([...document.querySelectorAll("#secrets tbody tr")].map((r) => [r.dataset.key, r.querySelector(".badge").textContent]))`)
}

func rowSel(key string) string { return `#secrets tbody tr[data-key="` + key + `"]` }

// revealedValue selects the revealed value of key.
func revealedValue(key string) string {
	return `#secrets tbody tr.value-row[data-for="` + key + `"] code.value`
}

// The whole console with an API key, signed in by keyboard: the list with
// its badges and count, the filter, reveal and auto-hide, copy, create
// with a window, a validation error on its field, delete, a narrow screen,
// and sign-out forgetting everything.
func TestConsole_APIKey(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t), "--ui-reveal-timeout", "2s")
	key := createKey(t, dataDir, "demo", "Secret.Read", "Secret.Write")
	now := time.Now().UTC()
	consolePut(t, srv.base, key, "db-password", `{"value":"hunter2-open"}`)
	consolePut(t, srv.base, key, "old-token", `{"value":"v-expired","options":{"expiresOn":"2020-01-01T00:00:00Z"}}`)
	consolePut(t, srv.base, key, "next-cert", `{"value":"v-future","options":{"notBefore":"2099-01-01T00:00:00Z"}}`)
	consolePut(t, srv.base, key, "api-token", fmt.Sprintf(`{"value":"tok-3-days","options":{"expiresOn":%q}}`, now.Add(72*time.Hour).Format(time.RFC3339)))
	consolePut(t, srv.base, key, "tls-key", fmt.Sprintf(`{"value":"v-20-days","options":{"expiresOn":%q}}`, now.Add(20*24*time.Hour).Format(time.RFC3339)))

	p := newBrowser(t, srv.base)
	p.run(t, "sign in with the API key, by keyboard",
		chromedp.Navigate(srv.base+"/ui/"),
		chromedp.WaitVisible("#apikey:focus"),
		chromedp.SendKeys("#apikey", key+"\r"),
		chromedp.WaitVisible(rowSel("db-password")),
	)
	if got, want := p.badges(t), map[string]string{
		"api-token":   "Expires within 7 days",
		"db-password": "Valid",
		"next-cert":   "Not yet valid",
		"old-token":   "Expired",
		"tls-key":     "Expires within 30 days",
	}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("badges = %v, want %v", got, want)
	}
	text := p.text(t, "#count")
	if text != "5 secrets in demo" {
		t.Errorf("count = %q, want 5 secrets in demo", text)
	}
	p.screenshot(t, "console-list")

	p.run(t, "filter", chromedp.SendKeys("#filter", "token"), chromedp.WaitNotPresent(rowSel("db-password")))
	text = p.text(t, "#count")
	if got := p.badges(t); len(got) != 2 || got["api-token"] == "" || got["old-token"] == "" || text != "2 of 5 secrets in demo match" {
		t.Errorf("filtered by token: %v, count %q; want api-token and old-token, 2 of 5", got, text)
	}
	p.run(t, "clear the filter", consoleSetInput("#filter", ""), chromedp.WaitVisible(rowSel("db-password")))

	// Nothing has fetched a value yet.
	html := pageGet(t, p, "page", chromedp.OuterHTML("html"))
	p.noneInPage(t, html, "hunter2-open", "v-expired", "v-future", "tok-3-days", "v-20-days")

	// Reveal, then the value goes by itself after --ui-reveal-timeout.
	p.run(t, "reveal",
		chromedp.Click(rowSel("db-password")+" button.reveal"),
		chromedp.WaitVisible(revealedValue("db-password")),
	)
	if text = p.text(t, revealedValue("db-password")); text != "hunter2-open" {
		t.Errorf("revealed %q, want hunter2-open", text)
	}
	p.screenshot(t, "console-reveal")
	p.run(t, "auto-hide", chromedp.WaitNotPresent(revealedValue("db-password")))
	p.forgottenValues(t, "hunter2-open")

	// Reveal and hide by hand.
	p.run(t, "reveal and hide",
		chromedp.Click(rowSel("next-cert")+" button.reveal"), // outside its window: not readable
		chromedp.WaitVisible(`#status`),
		chromedp.Click(rowSel("db-password")+" button.reveal"),
		chromedp.WaitVisible(revealedValue("db-password")),
		chromedp.Click(rowSel("db-password")+" button.reveal"),
		chromedp.WaitNotPresent(revealedValue("db-password")),
	)
	p.forgottenValues(t, "hunter2-open")

	// Filtering redraws the list: a revealed value does not survive it.
	p.run(t, "reveal and filter",
		chromedp.Click(rowSel("db-password")+" button.reveal"),
		chromedp.WaitVisible(revealedValue("db-password")),
		chromedp.SendKeys("#filter", "db"),
		chromedp.WaitNotPresent(revealedValue("db-password")),
		consoleSetInput("#filter", ""),
		chromedp.WaitVisible(rowSel("api-token")),
		// and Reveal reveals again, once.
		chromedp.Click(rowSel("db-password")+" button.reveal"),
		chromedp.WaitVisible(revealedValue("db-password")),
		chromedp.Click(rowSel("db-password")+" button.reveal"),
		chromedp.WaitNotPresent(revealedValue("db-password")),
	)
	p.forgottenValues(t, "hunter2-open")

	// Copy puts the value on the clipboard without showing it.
	u, _ := url.Parse(srv.base)
	origin := u.Scheme + "://" + u.Host
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		ctx, cancel := p.bounded()
		_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm}, Setting: browser.PermissionSettingGranted, Origin: origin,
		})
		cancel()
		if err != nil {
			t.Fatalf("grant %s: %v", perm, err)
		}
	}
	p.run(t, "copy",
		chromedp.Click(rowSel("api-token")+" button.copy"),
		chromedp.Poll[chromedp.Void](`document.getElementById("status").textContent.startsWith("Copied api-token")`, chromedp.WithPollingTimeout(10*time.Second)),
	)
	clip := pageEval[string](t, p, `navigator.clipboard.readText()`)
	if clip != "tok-3-days" {
		t.Errorf("clipboard = %q, want tok-3-days", clip)
	}
	p.forgottenValues(t, "tok-3-days")

	// Create with a window, typed in local time (Paris): stored in UTC.
	p.run(t, "create",
		chromedp.Click("#new-secret"),
		chromedp.WaitVisible("#editor"),
		chromedp.SendKeys("#f-key", "new-key"),
		chromedp.SendKeys("#f-value", "brand-new-value"),
		consoleSetInput("#f-expireson", "2099-01-01T01:00:00"),
	)
	utcShown := p.text(t, "#f-expireson-utc")
	p.run(t, "save",
		chromedp.Click("#editor-save"),
		chromedp.WaitVisible(rowSel("new-key")),
		chromedp.WaitNotVisible("#editor"),
	)
	if utcShown != "2099-01-01 00:00:00 UTC" {
		t.Errorf("UTC beside the local expiresOn = %q, want 2099-01-01 00:00:00 UTC", utcShown)
	}
	_, _, attrs := do(t, "GET", srv.base+"/api/demo/secret-attributes", key, "")
	if !strings.Contains(attrs, `{"key":"new-key","notBefore":null,"expiresOn":"2099-01-01T00:00:00Z"`) {
		t.Errorf("attributes after create = %s, want new-key expiring 2099-01-01T00:00:00Z", attrs)
	}

	// Edit sets a new value and keeps the window it shows: createdOn stays.
	before := attrs
	p.run(t, "edit",
		chromedp.Click(rowSel("new-key")+" button.edit"),
		chromedp.WaitVisible("#editor"),
	)
	if got := pageEval[string](t, p, `document.getElementById("f-key").readOnly + " " + document.getElementById("f-expireson").value + " " + document.getElementById("f-value").value`); got != "true 2099-01-01T01:00 " { // the browser drops :00 seconds
		t.Errorf("editor of new-key = %q, want a read-only key, its expiresOn in Paris time and no value", got)
	}
	p.run(t, "save the edit",
		chromedp.SendKeys("#f-value", "edited-value"),
		chromedp.Click("#editor-save"),
		chromedp.WaitNotVisible("#editor"),
	)
	if status, _, v := do(t, "GET", srv.base+"/api/demo/secrets/new-key", key, ""); status != http.StatusOK || v != "edited-value" {
		t.Errorf("after the edit GET = %d %q, want edited-value", status, v)
	}
	_, _, attrs = do(t, "GET", srv.base+"/api/demo/secret-attributes", key, "")
	created := func(list string) string {
		var as []struct{ Key, ExpiresOn, CreatedOn, UpdatedOn string }
		json.Unmarshal([]byte(list), &as)
		for _, a := range as {
			if a.Key == "new-key" {
				return a.ExpiresOn + " " + a.CreatedOn
			}
		}
		return ""
	}
	if created(attrs) != created(before) || !strings.HasPrefix(created(attrs), "2099-01-01T00:00:00Z ") {
		t.Errorf("after the edit new-key has expiresOn and createdOn %q, want %q as before", created(attrs), created(before))
	}

	// The API's validation error shows on its field.
	p.run(t, "validation error",
		chromedp.Click("#new-secret"),
		chromedp.WaitVisible("#editor"),
		chromedp.SendKeys("#f-key", "bad-window"),
		chromedp.SendKeys("#f-value", "x"),
		consoleSetInput("#f-notbefore", "2099-06-01T00:00:00"),
		consoleSetInput("#f-expireson", "2099-01-01T00:00:00"),
		chromedp.Click("#editor-save"),
		chromedp.WaitVisible("#err-expireson"),
	)
	fieldErr := p.text(t, "#err-expireson")
	invalid := pageEval[string](t, p, `document.getElementById("f-expireson").getAttribute("aria-invalid")`)
	if fieldErr != "expiresOn must be after notBefore." || invalid != "true" {
		t.Errorf("field error %q, aria-invalid %q; want the API's message on expiresOn", fieldErr, invalid)
	}
	p.screenshot(t, "console-validation")
	p.run(t, "cancel", chromedp.Click("#editor-cancel"), chromedp.WaitNotVisible("#editor"))
	if status, _, _ := do(t, "GET", srv.base+"/api/demo/secrets/bad-window", key, ""); status != http.StatusNotFound {
		t.Errorf("the refused secret was stored: GET = %d", status)
	}

	// Delete, behind a confirmation that names the key.
	p.run(t, "delete",
		chromedp.Click(rowSel("new-key")+" button.delete"),
		chromedp.WaitVisible("#confirm"),
	)
	confirm := p.text(t, "#confirm-text")
	p.run(t, "confirm",
		chromedp.Click("#confirm-delete"),
		chromedp.WaitNotPresent(rowSel("new-key")),
	)
	if !strings.Contains(confirm, "new-key") {
		t.Errorf("confirmation %q does not name the key", confirm)
	}
	if status, _, _ := do(t, "GET", srv.base+"/api/demo/secrets/new-key", key, ""); status != http.StatusNotFound {
		t.Errorf("after delete GET = %d, want 404", status)
	}

	// Readable at 360 px: nothing wider than the screen.
	p.run(t, "narrow", cdpCall(emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 360, Height: 740, DeviceScaleFactor: 1, Mobile: true}))
	if width := pageEval[int](t, p, `document.documentElement.scrollWidth`); width > 360 {
		t.Errorf("at 360 px the page is %d px wide", width)
	}
	p.screenshot(t, "console-narrow")
	p.run(t, "wide again", cdpCall(emulation.ClearDeviceMetricsOverride, cdp.Empty{}))

	p.run(t, "sign out", chromedp.Click("#signout"), chromedp.WaitVisible("#apikey"))
	p.forgotten(t, key, "hunter2-open", "tok-3-days", "brand-new-value", "db-password")
	p.clean(t)
}

// forgottenValues fails if a value is still in the DOM or in storage.
func (p *browserPage) forgottenValues(t *testing.T, values ...string) {
	t.Helper()
	type pageState struct {
		HTML    string `json:"html"`
		Storage int    `json:"storage"`
	}
	state := pageEval[pageState](t, p, `({html: document.documentElement.outerHTML, storage: localStorage.length + sessionStorage.length})`)
	if state.Storage != 0 {
		t.Errorf("the page keeps %d storage items, want none", state.Storage)
	}
	p.noneInPage(t, state.HTML, values...)
}

// --ui-idle-timeout forgets the credential after that long without input.
func TestConsole_IdleTimeout(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t), "--ui-idle-timeout", "2s")
	key := createKey(t, dataDir, "demo", "Secret.Read", "Secret.Write")
	consolePut(t, srv.base, key, "db-password", `{"value":"idle-value"}`)
	p := newBrowser(t, srv.base)
	p.run(t, "sign in and wait",
		chromedp.Navigate(srv.base+"/ui/"),
		chromedp.WaitVisible("#apikey"),
		chromedp.SendKeys("#apikey", key),
		chromedp.Click("#apikey-submit"),
		chromedp.WaitVisible(rowSel("db-password")),
		chromedp.Click(rowSel("db-password")+" button.reveal"),
		chromedp.WaitVisible(revealedValue("db-password")),
		// No input from here: the page signs itself out.
		chromedp.WaitVisible("#apikey"),
	)
	if msg := p.text(t, "#signin-message"); !strings.Contains(msg, "Signed out after 2 s without activity") {
		t.Errorf("sign-in message = %q, want the idle sign-out", msg)
	}
	p.forgotten(t, key, "idle-value", "db-password")
	p.clean(t)
}

// pkceIssuer is an authorization server of the test's own on loopback:
// discovery, /authorize that approves at once and redirects back with a
// code, /oauth/token that checks the code_verifier against the S256
// challenge and issues a JWT signed with its JWKS.
type pkceIssuer struct {
	*issuer
	srv      *httptest.Server
	audience string
	tenants  []string

	mu        sync.Mutex
	codes     map[string]pkceCode
	exchanged int
	refused   []string
}

type pkceCode struct{ challenge, redirect string }

func newPKCEIssuer(t *testing.T, tenants []string) *pkceIssuer {
	t.Helper()
	is := &pkceIssuer{issuer: &issuer{keys: map[string]any{}}, audience: testAudience, tenants: tenants, codes: map[string]pkceCode{}}
	is.addKey(t, "rsa-1", jwa.RS256())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                           is.url(),
			"authorization_endpoint":           is.srv.URL + "/authorize",
			"token_endpoint":                   is.srv.URL + "/oauth/token",
			"jwks_uri":                         is.srv.URL + "/.well-known/jwks.json",
			"code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		set := jwk.NewSet()
		for _, k := range is.public {
			set.AddKey(k)
		}
		is.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("response_type") != "code", q.Get("client_id") != consoleClientID,
			q.Get("code_challenge_method") != "S256", q.Get("code_challenge") == "",
			q.Get("audience") != is.audience, !strings.HasSuffix(q.Get("redirect_uri"), "/ui/callback"):
			is.refuse("authorize " + r.URL.RawQuery)
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		code := rand.Text()
		is.mu.Lock()
		is.codes[code] = pkceCode{challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
		is.mu.Unlock()
		back := q.Get("redirect_uri") + "?" + url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, back, http.StatusFound)
	})
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-store")
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		f := r.PostForm
		is.mu.Lock()
		c, ok := is.codes[f.Get("code")]
		delete(is.codes, f.Get("code")) // one use
		is.mu.Unlock()
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		switch {
		case !ok, f.Get("grant_type") != "authorization_code", f.Get("client_id") != consoleClientID,
			f.Get("redirect_uri") != c.redirect,
			base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
			is.refuse("token")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		tok := is.sign(t, "rsa-1", jwa.RS256(), claims(is.tenants, "openid Secret.Read Secret.Write", map[string]any{
			"iss": is.url(), "azp": consoleClientID, "sub": "auth0|console-user",
		}))
		is.mu.Lock()
		is.exchanged++
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *pkceIssuer) url() string { return is.srv.URL + "/" }

func (is *pkceIssuer) refuse(what string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.refused = append(is.refused, what)
}

// The test issuer refuses a code_verifier that does not match the
// challenge: the browser's success below proves it sent the right one.
func TestConsole_PKCEIssuerChecksVerifier(t *testing.T) {
	is := newPKCEIssuer(t, []string{"demo"})
	sum := sha256.Sum256([]byte("the-right-verifier"))
	is.codes["c1"] = pkceCode{challenge: base64.RawURLEncoding.EncodeToString(sum[:]), redirect: "http://x/ui/callback"}
	for _, tc := range []struct {
		verifier string
		want     int
	}{{"a-wrong-verifier", 400}, {"the-right-verifier", 400 /* the code was used up */}} {
		resp, err := http.PostForm(is.srv.URL+"/oauth/token", url.Values{
			"grant_type": {"authorization_code"}, "client_id": {consoleClientID}, "code": {"c1"},
			"redirect_uri": {"http://x/ui/callback"}, "code_verifier": {tc.verifier},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token with verifier %q = %d, want %d", tc.verifier, resp.StatusCode, tc.want)
		}
	}
}

// Sign-in with OAuth2 code + PKCE against the test issuer: the token's
// tenants are offered, the code leaves the address bar, the PKCE state
// leaves sessionStorage, and sign-out forgets the token.
func TestConsole_PKCE(t *testing.T) {
	is := newPKCEIssuer(t, []string{"acme", "demo"})
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t),
		"--jwt-issuer", is.url(), "--jwt-audience", testAudience, "--ui-client-id", consoleClientID)
	key := createKey(t, dataDir, "demo", "Secret.Read", "Secret.Write")
	consolePut(t, srv.base, key, "db-password", `{"value":"pkce-value"}`)
	resp, err := http.Get(srv.base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' "+is.srv.URL+";") {
		t.Errorf("CSP %q does not let the page reach the issuer %s", csp, is.srv.URL)
	}

	p := newBrowser(t, srv.base)
	p.run(t, "sign in with PKCE",
		chromedp.Navigate(srv.base+"/ui/"),
		chromedp.WaitVisible("#oauth-signin"),
		chromedp.Click("#oauth-signin"),
		chromedp.WaitVisible("#tenant-select"),
		chromedp.WaitVisible("#count"),
	)
	who := p.text(t, "#whoami")
	location := pageEval[string](t, p, `location.href`)
	tenants := pageEval[string](t, p, `[...document.querySelectorAll("#tenant-select option")].map((o) => o.value).join(",")`)
	is.mu.Lock()
	exchanged, refused := is.exchanged, is.refused
	is.mu.Unlock()
	if exchanged != 1 || len(refused) != 0 {
		t.Fatalf("issuer exchanged %d codes and refused %q, want one exchange", exchanged, refused)
	}
	if location != srv.base+"/ui/" {
		t.Errorf("after sign-in the address is %q, want %s/ui/ without the code", location, srv.base)
	}
	if tenants != "acme,demo" || who != "Token auth0|console-user" {
		t.Errorf("tenants %q, whoami %q; want acme,demo for the token's subject", tenants, who)
	}
	p.run(t, "open demo",
		chromedp.SetValue("#tenant-select", "demo"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("tenant-select").dispatchEvent(new Event("change"))`),
		chromedp.WaitVisible(rowSel("db-password")),
		chromedp.Click(rowSel("db-password")+" button.reveal"),
		chromedp.WaitVisible(revealedValue("db-password")),
	)
	p.forgottenValues(t) // the PKCE verifier and state are gone from sessionStorage
	p.run(t, "sign out", chromedp.Click("#signout"), chromedp.WaitVisible("#oauth-signin"))
	p.forgotten(t, "pkce-value", "db-password")
	p.clean(t)
}

// --ui=false (or NEOSTORE_UI=false) leaves /ui/ to the API's 404; by
// default the console is served with its policy.
func TestConsole_UIFlag(t *testing.T) {
	on := startServer(t, filepath.Join(t.TempDir(), "data"), newMasterKey(t))
	resp, err := http.Head(on.base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none';") {
		t.Errorf("HEAD /ui/ = %d, CSP %q; want 200 with the console's policy", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	off := startServer(t, filepath.Join(t.TempDir(), "data"), newMasterKey(t), "--ui=false")
	if status, _, _ := do(t, "GET", off.base+"/ui/", "", ""); status != http.StatusNotFound {
		t.Errorf("GET /ui/ with --ui=false = %d, want 404", status)
	}
}
