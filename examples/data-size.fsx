// The data-size comparison of docs/RESULTS.md: the same seeds of one pruning-paper condition trained on
// two amounts of data (two ledger conditions), paired seed by seed on the final epoch's metrics (the
// paper's Table 1) and on how stable each run's temperature ranking of a layer's filters is. Build once
// first (`dotnet fsi build.fsx build`), then:
//
//   dotnet fsi examples/data-size.fsx \
//     "results/pruning-paper-data-size-60000/lr-decay=0.004-adam-eps=1E-07-init=xavier-data=mnist" \
//     "results/pruning-paper-data-size-8004/lr-decay=0.03-adam-eps=1E-07-init=xavier-data=mnist-train=8004"
//
// Differences are A − B (the first condition minus the second): accuracies in points, losses as they
// are; the statistics are the library's (paired t, exact Wilcoxon, Holm over the table's rows).
#load "ThermoBuild.fsx"

open System
open System.IO
open Thermo.Analysis.Run
open Thermo.Analysis.Statistics
open Thermo.Analysis.Engine


let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length < 2 then
    eprintfn "usage: dotnet fsi examples/data-size.fsx CONDITION_A CONDITION_B [LAYER (default conv1)]"
    exit 2
let layer = if args.Length > 2 then args[2] else "conv1"

/// seed → run directory of a ledger condition (CONDITION/seed-S).
let seeds (condition: string) =
    if not (Directory.Exists condition) then failwithf "%s: no such ledger condition" condition
    Directory.GetDirectories(condition, "seed-*")
    |> Array.map (fun d -> int (Path.GetFileName(d).Substring 5), d)
    |> Map.ofArray

let a, b = seeds args[0], seeds args[1]
let shared = Set.intersect (a |> Map.keys |> Set.ofSeq) (b |> Map.keys |> Set.ofSeq) |> Set.toArray
if shared.Length = 0 then failwith "the two conditions share no seed"
let last (run: string) = MetricsTable.read (Path.Combine(run, "metrics.parquet")) |> Array.last
let stability (run: string) = MultipleTests.halfWindowStability (AnalysisTables.unitInstantaneous run layer)

let measures : (string * float * (string -> float)) list =
    [ "test accuracy (points)", 100.0, (fun r -> (last r).TestAccuracy)
      "test loss", 1.0, (fun r -> (last r).TestLoss)
      "training accuracy (points)", 100.0, (fun r -> (last r).TrainAccuracy)
      "training loss", 1.0, (fun r -> (last r).TrainLoss)
      sprintf "ranking stability of %s (Spearman ρ, window halves)" layer, 1.0, stability ]

let rows =
    measures |> List.map (fun (name, scale, f) ->
        let xa = shared |> Array.map (fun s -> scale * f a[s])
        let xb = shared |> Array.map (fun s -> scale * f b[s])
        name, xa, xb, PairedTests.compare xa xb)
let holm = rows |> List.map (fun (_, _, _, c) -> c.TPValue) |> List.toArray |> MultipleTests.holm

let meanSd (x: float[]) =
    let m = Array.average x
    let sd = if x.Length < 2 then nan else sqrt ((x |> Array.sumBy (fun v -> (v - m) ** 2.0)) / float (x.Length - 1))
    sprintf "%.4g ± %.2g" m sd

printfn "A: %s\nB: %s\nseeds paired: %s\n" args[0] args[1] (String.Join(", ", shared))
printfn "| measure | A | B | A − B (mean ± sd) | 95 %% interval | t p | Holm p | Wilcoxon p |"
printfn "|---|---|---|---|---|---|---|---|"
rows |> List.iteri (fun i (name, xa, xb, c) ->
    printfn "| %s | %s | %s | %+.4g ± %.2g | [%.4g, %.4g] | %.2g | %.2g | %.3g |" name (meanSd xa) (meanSd xb) c.MeanDifference c.StandardDeviation c.Low95 c.High95 c.TPValue holm[i] c.WilcoxonPValue)
