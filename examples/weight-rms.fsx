// Root mean square of every tensor of a run at some epochs, from its snapshots: how far training (or a
// weight decay) has moved each layer's weights from zero. docs/RESULTS.md uses it for the graph
// networks' collapse under weight decay. Build once first (`dotnet fsi build.fsx build`), then:
//
//   dotnet fsi examples/weight-rms.fsx results/graph-settings/gat-wd1e-3-seed1 0 2 20
#load "ThermoBuild.fsx"

open System.IO
open Thermo.Analysis.Format
open Thermo.Analysis.Run


let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length < 2 then
    eprintfn "usage: dotnet fsi examples/weight-rms.fsx RUN EPOCH..."
    exit 2
let run = args[0]
let files = SnapshotSeries.listEpochFiles run |> Array.map (fun f -> f.Time, f.Path) |> Map.ofArray
for epoch in args[1..] |> Array.map int do
    match files.TryFind epoch with
    | None -> eprintfn "%s: no snapshot of epoch %d" run epoch; exit 2
    | Some file ->
        let snapshot = SnapshotReader.readFile file
        let rms (v: float32[]) = sqrt (v |> Array.averageBy (fun x -> float x * float x))
        printfn "epoch %d: %s" epoch (snapshot.Tensors |> Array.map (fun t -> sprintf "%s.%s %.3g" t.Layer t.Tensor (rms t.Values)) |> String.concat ", ")
