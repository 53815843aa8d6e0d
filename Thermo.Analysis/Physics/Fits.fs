namespace Thermo.Analysis.Physics

/// A least-squares fit with the range it was made over and its goodness.
type FitResult =
    { /// Fitted exponent or slope (α, β, or 2D·Δt's slope as stated by the producing function).
      Slope: float
      /// Intercept of the fitted line (log c for power laws, 0 for fits through the origin).
      Intercept: float
      /// Coefficient of determination of the fit in the space it was made in.
      RSquared: float
      /// First and last x used.
      RangeFrom: float
      RangeTo: float
      /// Points used.
      Points: int }

/// Fits of docs/THEORY.md: anomalous exponent α, diffusion constant D, power laws T = c·x^β.
module Fits =
    let private rSquared (y: float[]) (predicted: float[]) =
        let mean = Array.average y
        let ssTot = Array.sumBy (fun v -> (v - mean) ** 2.0) y
        let ssRes = Array.fold2 (fun s a b -> s + (a - b) ** 2.0) 0.0 y predicted
        if ssTot = 0.0 then (if ssRes = 0.0 then 1.0 else 0.0) else 1.0 - ssRes / ssTot

    /// Ordinary least squares y = intercept + slope·x.
    let line (x: float[]) (y: float[]) : FitResult =
        if x.Length <> y.Length then invalidArg "y" "x and y differ in length"
        if x.Length < 2 then invalidArg "x" "a line needs at least two points"
        let struct (intercept, slope) = MathNet.Numerics.Fit.Line(x, y)
        { Slope = slope; Intercept = intercept
          RSquared = rSquared y (x |> Array.map (fun v -> intercept + slope * v))
          RangeFrom = Array.min x; RangeTo = Array.max x; Points = x.Length }

    /// Power law y = c·x^β by least squares of log y on log x; points with x ≤ 0 or y ≤ 0 are dropped.
    /// Returns β as Slope, log c as Intercept, and R² in log–log space.
    let powerLaw (x: float[]) (y: float[]) : FitResult =
        let kept = Array.zip x y |> Array.filter (fun (a, b) -> a > 0.0 && b > 0.0)
        if kept.Length < 2 then invalidArg "y" "a power law needs at least two points with positive x and y"
        let fit = line (kept |> Array.map (fst >> log)) (kept |> Array.map (snd >> log))
        { fit with RangeFrom = kept |> Array.map fst |> Array.min; RangeTo = kept |> Array.map fst |> Array.max }

    /// Anomalous-diffusion exponent α: MSD ∝ τ^α over lags [fromLag, toLag] (α≈1 diffusive, α≈2 ballistic).
    let anomalousExponent (lags: int[]) (msd: float[]) (fromLag: int) (toLag: int) : FitResult =
        let pick = Array.zip lags msd |> Array.filter (fun (l, _) -> l >= fromLag && l <= toLag)
        powerLaw (pick |> Array.map (fst >> float)) (pick |> Array.map snd)

    /// Diffusion constant D from MSD ≈ 2·d·D·t with d = 1 (t = τ·Δt), least squares through the
    /// origin over lags [fromLag, toLag]. Returns D as Slope (intercept 0).
    let diffusionConstant (dt: float) (lags: int[]) (msd: float[]) (fromLag: int) (toLag: int) : FitResult =
        let pick = Array.zip lags msd |> Array.filter (fun (l, _) -> l >= fromLag && l <= toLag)
        if pick.Length < 1 then invalidArg "lags" "no lag inside the fit range"
        let t = pick |> Array.map (fun (l, _) -> float l * dt)
        let y = pick |> Array.map snd
        let slope = Array.fold2 (fun s a b -> s + a * b) 0.0 t y / Array.sumBy (fun v -> v * v) t
        { Slope = slope / 2.0; Intercept = 0.0
          RSquared = rSquared y (t |> Array.map (fun v -> slope * v))
          RangeFrom = float (fst pick[0]); RangeTo = float (fst pick[pick.Length - 1]); Points = pick.Length }
