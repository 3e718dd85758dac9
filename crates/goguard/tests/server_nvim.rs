//! `goguard server` end to end with a real editor's LSP client: Neovim, headless. Its
//! built-in client (`vim.lsp`, Neovim 0.7 from Debian) starts the server for a Go file,
//! the test waits for `vim.diagnostic.get` to hold goguard's finding, asks for a hover,
//! applies the suppression code action (Neovim edits the buffer and sends the change) and
//! waits for the finding to go, and writes it all to a file. scripts/test installs nvim; without it the test is skipped with a
//! message, except in CI (`CI` set), where it fails.

use std::process::Command;
use std::time::{Duration, Instant};

const INIT: &str = r#"
local bin = os.getenv('GOGUARD_BIN')
local out = os.getenv('GOGUARD_NVIM_OUT')
local function finish(result)
  local f = io.open(out, 'w')
  f:write(vim.fn.json_encode(result))
  f:close()
  vim.cmd('qa!')
end
local buf = vim.api.nvim_get_current_buf()
local client = vim.lsp.start_client({
  name = 'goguard',
  cmd = { bin, 'server' },
  root_dir = vim.fn.getcwd(),
})
vim.lsp.buf_attach_client(buf, client)
local ok = vim.wait(60000, function() return #vim.diagnostic.get(buf) > 0 end, 20)
if not ok then
  finish({ error = 'no diagnostics within 60 s' })
  return
end
local diags = {}
for _, d in ipairs(vim.diagnostic.get(buf)) do
  table.insert(diags, { lnum = d.lnum, col = d.col, code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code), source = d.source, message = d.message, severity = d.severity })
end
local first = vim.diagnostic.get(buf)[1]
local params = { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = first.lnum, character = first.col + 1 } }
local hover = vim.lsp.buf_request_sync(buf, 'textDocument/hover', params, 30000)
local text = ''
for _, r in pairs(hover or {}) do
  if r.result and r.result.contents then text = r.result.contents.value end
end
-- The suppression code action, applied by Neovim (its edit, then an incremental didChange).
local range = { start = { line = first.lnum, character = 0 }, ['end'] = { line = first.lnum, character = 0 } }
local actions = vim.lsp.buf_request_sync(buf, 'textDocument/codeAction',
  { textDocument = { uri = vim.uri_from_bufnr(buf) }, range = range, context = { diagnostics = {} } }, 30000)
local titles = {}
local applied = false
for _, r in pairs(actions or {}) do
  for _, a in ipairs(r.result or {}) do
    table.insert(titles, a.title)
    if not applied and a.title:find('^Suppress') then
      vim.lsp.util.apply_workspace_edit(a.edit, 'utf-16')
      applied = true
    end
  end
end
local cleared = applied and vim.wait(60000, function() return #vim.diagnostic.get(buf) == 0 end, 20)
local line = vim.api.nvim_buf_get_lines(buf, first.lnum, first.lnum + 1, false)[1]
finish({ diagnostics = diags, hover = text, actions = titles, cleared = cleared, suppression = line })
"#;

#[test]
fn neovim_shows_the_finding_and_its_documentation() {
    if Command::new("nvim").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "nvim is not installed");
        eprintln!("skipped: nvim is not installed (scripts/test installs it)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("goguard-nvim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("go.mod"), "module example.com/pkg\n\ngo 1.24\n").unwrap();
    std::fs::write(dir.join("a.go"), BUGGY).unwrap();
    std::fs::write(dir.join("init.lua"), INIT).unwrap();
    let out = dir.join("result.json");
    let mut child = Command::new("nvim")
        .args([
            "--headless",
            "--clean",
            "-n",
            "a.go",
            "-c",
            "luafile init.lua",
        ])
        .current_dir(&dir)
        .env("GOGUARD_BIN", env!("CARGO_BIN_EXE_goguard"))
        .env("GOGUARD_NVIM_OUT", &out)
        .env("XDG_STATE_HOME", &dir)
        .env("XDG_DATA_HOME", &dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start nvim");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nvim did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("nvim's result")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(result.get("error").is_none(), "{result:#}");
    let d = &result["diagnostics"][0];
    assert_eq!(d["lnum"], 16, "{result:#}");
    assert_eq!(d["code"], "G304", "{result:#}");
    assert_eq!(d["source"], "goguard");
    assert_eq!(d["severity"], 1, "an error"); // vim.diagnostic.severity.ERROR
    assert_eq!(result["cleared"], true, "{result:#}");
    assert_eq!(
        result["suppression"],
        "\t\t//goguard:ignore G304 TODO: say why this is safe"
    );
    assert!(
        result["hover"]
            .as_str()
            .unwrap_or("")
            .starts_with("# G304 waitgroup-done-skippable"),
        "{result:#}"
    );
}

const BUGGY: &str = "package pkg

import (
\t\"errors\"
\t\"sync\"
)

func step() error { return errors.New(\"x\") }

func run() {
\tvar wg sync.WaitGroup
\twg.Add(1)
\tgo func() {
\t\tif err := step(); err != nil {
\t\t\treturn
\t\t}
\t\twg.Done()
\t}()
\twg.Wait()
}
";
