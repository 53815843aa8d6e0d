// Paired comparisons of pruning rows across the runs of a `thermo reproduce pruning-paper` directory
// (docs/RESULTS.md's table of them): for each condition and each pair of rows, the per-run differences
// in test accuracy (points), their mean ± sample sd, the 95 % t interval, the two-sided paired t-test
// p-value and the exact Wilcoxon signed-rank p-value (zero differences dropped). Build once first
// (`dotnet fsi build.fsx build`), then:
//
//   dotnet fsi examples/paired-comparisons.fsx artifacts/reproductions/pruning-paper-mnist-10k-e20-n10-r5
//   dotnet fsi examples/paired-comparisons.fsx results/pruning-paper-full        (the ledger)
//
// The pruning stage reports these comparisons itself (with Holm and TOST); this script shows the per-run differences.
#load "ThermoBuild.fsx"

open System.IO
open MathNet.Numerics.Distributions
open Thermo.Analysis.Format


let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length <> 1 then
    eprintfn "usage: dotnet fsi examples/paired-comparisons.fsx REPRODUCTION_DIR"
    exit 2

/// Two-sided exact Wilcoxon signed-rank p-value: the share of the 2^n sign patterns whose W+ lies at
/// least as far from its mean as the observed one (midranks for ties).
let wilcoxon (differences: float[]) =
    let d = differences |> Array.filter (fun x -> abs x > 1e-9)
    let magnitudes = d |> Array.map abs
    let rank x =
        let below = magnitudes |> Array.filter (fun y -> y < x) |> Array.length
        let equal = magnitudes |> Array.filter (fun y -> y = x) |> Array.length
        float below + (float equal + 1.0) / 2.0
    let ranks = magnitudes |> Array.map rank
    let half = Array.sum ranks / 2.0
    let observed = abs ((Array.zip d ranks |> Array.sumBy (fun (x, r) -> if x > 0.0 then r else 0.0)) - half)
    let patterns = 1 <<< d.Length
    let extreme =
        [ 0 .. patterns - 1 ]
        |> List.filter (fun m -> abs ((ranks |> Array.mapi (fun i r -> if (m >>> i) &&& 1 = 1 then r else 0.0) |> Array.sum) - half) >= observed - 1e-9)
    float extreme.Length / float patterns

// Every condition tabulated in a reproduction directory or a ledger (DIR/tables/CONDITION/results.parquet):
// weight-decay=W (older), l2=W, lr-decay=D.
for condition in Directory.GetDirectories(Path.Combine(args[0], "tables")) |> Array.filter (fun d -> File.Exists(Path.Combine(d, "results.parquet"))) |> Array.sort do
    let cols = Tables.read (Path.Combine(condition, "results.parquet")) "pruning"
    let strings name = cols |> List.pick (function StringColumn (n, v) when n = name -> Some v | _ -> None)
    let numbers name = cols |> List.pick (function Float64Column (n, v) when n = name -> Some v | _ -> None)
    let run, criterion, experiment, accuracy = strings "run", strings "criterion", strings "experiment", numbers "test_accuracy"
    let runs = run |> Array.distinct |> Array.sort
    // Random orders: the mean of a run's draws, as in the tables.
    let value c e r =
        [ for i in 0 .. run.Length - 1 do if criterion[i] = c && experiment[i] = e && run[i] = r then yield accuracy[i] ] |> List.average
    let compare label (ca, ea) (cb, eb) =
        let d = runs |> Array.map (fun r -> 100.0 * (value ca ea r - value cb eb r))
        let n = float d.Length
        let mean = Array.average d
        let sd = sqrt ((d |> Array.sumBy (fun x -> (x - mean) ** 2.0)) / (n - 1.0))
        let t = mean / (sd / sqrt n)
        let p = 2.0 * (1.0 - StudentT.CDF(0.0, 1.0, n - 1.0, abs t))
        let halfWidth = StudentT.InvCDF(0.0, 1.0, n - 1.0, 0.975) * sd / sqrt n
        printfn "| %s | %s | %s | %.2f ± %.2f | [%.2f, %.2f] | %.2f | %.2f |"
            (Path.GetFileName condition) label (d |> Array.map (sprintf "%.2f") |> String.concat ", ") mean sd (mean - halfWidth) (mean + halfWidth) p (wilcoxon d)
    compare "without 2 hottest − without 2 coldest" ("temperature", "WithoutHottest") ("temperature", "WithoutColdest")
    compare "only 3 coldest − only 3 hottest" ("temperature", "OnlyColdest") ("temperature", "OnlyHottest")
    compare "without 2 hottest − without 2 random" ("temperature", "WithoutHottest") ("random", "WithoutHottest")
