// Temperature-vs-hyper-parameter fits over several seeds: the `fits.parquet` of one `thermo sweep`
// per seed, each layer's exponent β (T = c·x^β, x = η or 1/B) per seed, its mean and spread, the
// worst R², and a paired t-test of β against the exponent the noise picture predicts (2 in η, 1 in
// 1/B), Holm-adjusted over the layers of each parameter. Build once first (`dotnet fsi build.fsx
// build`), then:
//
//   dotnet fsi examples/sweep-seeds.fsx artifacts/graph-paper/gcn-s1/sweep artifacts/graph-paper/gcn-s2/sweep …
#load "ThermoBuild.fsx"

open System
open System.IO
open Thermo.Analysis.Format
open Thermo.Analysis.Statistics

let sweeps = fsi.CommandLineArgs |> Array.skip 1
if sweeps.Length = 0 then
    eprintfn "usage: dotnet fsi examples/sweep-seeds.fsx SWEEP_DIR [SWEEP_DIR …] (one per seed)"
    exit 2

/// (parameter, layer) → (β, R²) of one sweep.
let fitsOf (sweep: string) =
    let path = Path.Combine(sweep, "fits.parquet")
    if not (File.Exists path) then failwithf "%s: no fits.parquet (has the sweep finished?)" sweep
    let columns = Tables.readByName path "sweep_fits"
    let parameters, layers = Tables.strings path columns "parameter", Tables.strings path columns "layer"
    let betas, r2 = Tables.float64s path columns "beta", Tables.float64s path columns "r_squared"
    Array.init parameters.Length (fun i -> (parameters[i], layers[i]), (betas[i], r2[i])) |> Map.ofArray

let perSeed = sweeps |> Array.map fitsOf
let keys = perSeed[0] |> Map.keys |> Seq.filter (fun k -> perSeed |> Array.forall (Map.containsKey k)) |> Seq.toArray
let theory parameter = if parameter = "lr" then 2.0 else 1.0

printfn "%d seeds: %s" sweeps.Length (String.Join(", ", sweeps))
printfn "| parameter | layer | β per seed | β mean ± sd | worst R² | β − theory | paired t p (Holm over layers) |"
printfn "|---|---|---|---|---|---|---|"
for parameter in keys |> Array.map fst |> Array.distinct do
    let rows = keys |> Array.filter (fun (p, _) -> p = parameter)
    let betas = rows |> Array.map (fun k -> perSeed |> Array.map (fun m -> fst m[k]))
    let tests = betas |> Array.map (fun b -> PairedTests.compare b (Array.create b.Length (theory parameter)))
    let holm = MultipleTests.holm (tests |> Array.map (fun t -> t.TPValue))
    rows |> Array.iteri (fun i (_, layer) ->
        let b = betas[i]
        let mean = Array.average b
        let sd = if b.Length < 2 then nan else sqrt ((b |> Array.sumBy (fun x -> (x - mean) ** 2.0)) / float (b.Length - 1))
        let worstR2 = perSeed |> Array.map (fun m -> snd m[(parameter, layer)]) |> Array.min
        printfn "| %s | %s | %s | %.2f ± %.2f | %.3f | %+.2f | %.3g (%.3g) |"
            (if parameter = "lr" then "η" else "1/B") layer (String.Join(" / ", b |> Array.map (sprintf "%.2f")))
            mean sd worstR2 tests[i].MeanDifference tests[i].TPValue holm[i])
