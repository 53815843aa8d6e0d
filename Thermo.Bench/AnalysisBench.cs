using System.Diagnostics;
using DuckDB.NET.Data;
using Thermo.Analysis;

/// <summary>
/// Issue 3's benchmarks on a synthetic run (random walks, CNN-like layer shapes): `analyze` against
/// DuckDB computing the same per-filter temperatures in SQL, read throughput against DuckDB's plain
/// scan, peak memory for two window lengths, and FFT against direct MSD.
/// </summary>
static class AnalysisBench
{
    public static void Run(string scratch, bool quick, Action<string, string, string, bool?> report, Func<IEnumerable<double>, double> median)
    {
        int epochs = quick ? 50 : 200;
        var shapes = quick
            ? new (string, int[])[] { ("conv1", [16, 3, 5, 5]), ("conv2", [32, 16, 3, 3]), ("fc", [100, 1000]) }
            : [("conv1", [64, 3, 5, 5]), ("conv2", [128, 64, 3, 3]), ("conv3", [256, 128, 3, 3]), ("fc", [640, 1000])];
        var run = Path.Combine(scratch, "analysis-run");
        long parameters = WriteSyntheticRun(run, shapes, epochs);
        double snapshotMegabytes = parameters * 4 / 1e6;

        // Thermo: per-filter equilibrium temperatures (plus instantaneous, MSD of conv1, fits) over the whole run.
        var options = AnalysisOptions.Default;
        var thermoTimes = new List<double>();
        for (int r = 0; r < 3; r++)
        {
            var sw = Stopwatch.StartNew();
            var result = Engine.analyze(run, new AnalysisOptions(WindowSpec.NewBetween(0, epochs), Grouping.Unit, options.Layers, false, options.Physics, options.MsdLayers, options.FitLags));
            AnalysisOutput.write(result);
            thermoTimes.Add(sw.Elapsed.TotalSeconds);
        }
        // DuckDB: the same definition in SQL, over the same files.
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        double Sql(string sql)
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            var sw = Stopwatch.StartNew();
            using var reader = command.ExecuteReader();
            while (reader.Read()) { }
            return sw.Elapsed.TotalSeconds;
        }
        var glob = Path.Combine(run, "snapshots", "*.parquet");
        var duckTimes = new List<double>();
        for (int r = 0; r < (quick ? 3 : 2); r++)
            duckTimes.Add(Sql($"""
                WITH v AS (SELECT layer, unit, epoch,
                                  value::DOUBLE - lag(value::DOUBLE) OVER (PARTITION BY layer, tensor, unit, "offset" ORDER BY epoch) AS v
                           FROM read_parquet('{glob}') WHERE tensor = 'weight')
                SELECT layer, unit, avg(0.5 * v * v) FROM v WHERE epoch > 0 GROUP BY layer, unit
                """));
        double thermo = median(thermoTimes), duck = median(duckTimes);
        report($"analyze, per-filter temperatures, {parameters / 1e6:F2}M parameters × {epochs} epochs: Thermo ÷ DuckDB SQL",
            $"{thermo:F2} s ÷ {duck:F2} s = {thermo / duck:F2}", "≤ 1.0", thermo / duck <= 1.0);

        // Read throughput: decoding every snapshot's values into one reused buffer (the engine's read
        // path), against DuckDB's plain scan of the column.
        var files = SnapshotReader.ListEpochFiles(run);
        var buffer = new float[parameters];
        var readTimes = new List<double>();
        for (int r = 0; r < 3; r++)
        {
            var sw = Stopwatch.StartNew();
            foreach (var (_, path) in files) SnapshotReader.ReadFlatInto(path, buffer);
            readTimes.Add(sw.Elapsed.TotalSeconds);
        }
        var scanTimes = Enumerable.Range(0, 3).Select(_ => Sql($"SELECT sum(value * value) FROM read_parquet('{glob}')")).ToList();
        double totalMegabytes = snapshotMegabytes * files.Length;
        double ours = totalMegabytes / median(readTimes), theirs = totalMegabytes / median(scanTimes);
        report("read throughput of the analysis ÷ DuckDB's scan of the value column",
            $"{ours:F0} MB/s ÷ {theirs:F0} MB/s = {ours / theirs:F2}", "≥ 0.5", ours / theirs >= 0.5);

        // Peak memory of `thermo analyze` as its own process, for a short and the full window.
        int shortWindow = Math.Min(50, epochs);
        double baseline = PeakResidentMegabytes(run, "0:1");
        foreach (var window in new[] { $"0:{shortWindow}", $"0:{epochs}" })
        {
            double peak = PeakResidentMegabytes(run, window);
            report($"peak memory of `thermo analyze --window {window}` above a 1-velocity analysis, ÷ one snapshot ({snapshotMegabytes:F1} MB)",
                $"({peak:F0} − {baseline:F0} MB) ÷ {snapshotMegabytes:F1} MB = {(peak - baseline) / snapshotMegabytes:F2}", "≤ 3", (peak - baseline) / snapshotMegabytes <= 3);
        }

        // FFT MSD against the direct sum at n = 1000 lags (and 4000, to show the n / log n growth), per
        // trajectory of a 64-weight group: the engine's case, where trajectories go two per FFT.
        foreach (int points in new[] { 1001, 4001 })
        {
            var rng = new Random(1);
            var group = Enumerable.Range(0, 64).Select(_ =>
            {
                var x = new double[points];
                for (int i = 1; i < x.Length; i++) x[i] = x[i - 1] + rng.NextDouble() - 0.5;
                return x;
            }).ToArray();
            // Warm both paths past the JIT's tiering thresholds, so the comparison is of optimised code.
            for (int i = 0; i < 40; i++) { Diffusion.msdMany(group); Diffusion.msdDirect(group[i]); }
            Thread.Sleep(200);
            double PerTrajectory(Action run)
            {
                var sw = Stopwatch.StartNew();
                run();
                return sw.Elapsed.TotalSeconds / group.Length;
            }
            var fft = Enumerable.Range(0, 7).Select(_ => PerTrajectory(() => Diffusion.msdMany(group))).ToList();
            var direct = Enumerable.Range(0, 5).Select(_ => PerTrajectory(() => { foreach (var x in group) Diffusion.msdDirect(x); })).ToList();
            report($"MSD of a {points}-point trajectory, all {points - 1} lags, per weight of a 64-weight group: direct O(n²) ÷ FFT",
                $"{median(direct) * 1e3:F3} ms ÷ {median(fft) * 1e3:F3} ms = {median(direct) / median(fft):F0}×", "≥ 20× at n = 1000",
                points == 1001 ? median(direct) / median(fft) >= 20 : null);
        }
        Directory.Delete(run, true);
    }

    static long WriteSyntheticRun(string run, (string Layer, int[] Shape)[] shapes, int epochs)
    {
        var rng = new Random(7);
        var values = shapes.Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()).ToArray();
        for (int e = 0; e <= epochs; e++)
        {
            if (e > 0)
                foreach (var v in values)
                    for (int i = 0; i < v.Length; i++) v[i] += (float)((rng.NextDouble() - 0.5) * 1e-3);
            var tensors = shapes.Select((s, i) => new TensorSnapshot(s.Layer, "weight", s.Shape, (float[])values[i].Clone())).ToArray();
            SnapshotWriter.write(SnapshotFileFormat.Parquet, Path.Combine(run, "snapshots", SnapshotSchema.fileName(SnapshotFileFormat.Parquet, e)), new Snapshot(e, e, tensors));
        }
        return values.Sum(v => (long)v.Length);
    }

    /// Runs `thermo analyze` as a child process and returns its peak resident set (VmHWM) in MB.
    static double PeakResidentMegabytes(string run, string window)
    {
        var thermo = Path.Combine(AppContext.BaseDirectory, "thermo.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { thermo, "analyze", run, "--window", window }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        double peak = 0;
        while (!p.HasExited)
        {
            try
            {
                var line = File.ReadLines($"/proc/{p.Id}/status").FirstOrDefault(l => l.StartsWith("VmHWM:"));
                if (line is not null) peak = Math.Max(peak, double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024);
            }
            catch (IOException) { }
            Thread.Sleep(10);
        }
        if (p.ExitCode != 0) throw new InvalidOperationException($"thermo analyze failed: {error.Result}");
        GC.KeepAlive(output.Result);
        return peak;
    }
}
