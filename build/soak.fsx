// The soak harness behind `dotnet fsi build.fsx soak`: back-to-back trainings and kills of every stage.

module Soak

#load "common.fsx"

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open Common

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
    setupData [ "mnist-10k" ]
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
    let tinyArgs = [ "--dataset"; "mnist-10k"; "--train-limit"; "1024"; "--test-limit"; "256"; "--epochs"; "2"; "--batch-size"; "64"; "--widths"; "4,4,8,8" ]
    series "tiny fourconv, 1 thread" tiny [ 1; 2; 3; 4; 5 ] 1 tinyArgs
    series "tiny fourconv, 2 threads" tiny [ 1; 2; 3; 4; 5 ] 2 tinyArgs
    series (sprintf "mnist-10k fourconv, %d epochs" epochs) real [ 1; 2 ] 2 [ "--dataset"; "mnist-10k"; "--epochs"; string epochs ]
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
        [ "## Soak"
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
