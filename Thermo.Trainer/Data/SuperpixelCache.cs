using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Format;

namespace Thermo.Trainer.Data;

/// <summary>The superpixel graphs of a data set's two splits, image for image.</summary>
public sealed record SuperpixelGraphs(SuperpixelGraph[] Train, SuperpixelGraph[] Test);

/// <summary>
/// SLIC graphs of a data set, computed once and kept as Parquet beside the data, in
/// <c>artifacts/data/&lt;data set&gt;-slic-n&lt;segments&gt;-m&lt;compactness&gt;-i&lt;iterations&gt;-&lt;key&gt;/</c>:
/// <c>{train,test}-nodes.parquet</c> (image, node, intensity, x, y: one row per superpixel) and
/// <c>{train,test}-edges.parquet</c> (image, source, target: one row per undirected edge, source &lt;
/// target), with <c>slic.json</c> saying what they were computed from. The key hashes the data set's
/// digest, the SLIC parameters and <see cref="AlgorithmVersion"/>, so other data, other parameters or
/// another algorithm land in another directory and are computed afresh. The directory is filled under a
/// temporary name and renamed into place, so a reader sees all four tables or none.
/// </summary>
public static class SuperpixelCache
{
    /// <summary>Changes whenever <see cref="Slic"/> or <see cref="SuperpixelGraph"/> would compute
    /// different graphs from the same images and parameters, so caches of the old code are not reused.</summary>
    public const int AlgorithmVersion = 1;

    public const string NodesTable = "superpixel_nodes";
    public const string EdgesTable = "superpixel_edges";
    public const string DescriptionFile = "slic.json";

    /// <summary>The cache key of a data set's graphs under <paramref name="parameters"/> (16 hex digits).</summary>
    public static string Key(string digest, SlicParameters parameters)
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{digest}\nsegments={parameters.Segments}\ncompactness={parameters.Compactness:R}\niterations={parameters.Iterations}\nalgorithm={AlgorithmVersion}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }

    /// <summary>The cache directory of <paramref name="data"/>'s graphs below <paramref name="artifacts"/>.</summary>
    public static string DirectoryOf(string artifacts, ImageDataset data, SlicParameters parameters) =>
        DataSources.CacheDirectory(artifacts, string.Create(CultureInfo.InvariantCulture,
            $"{data.Name}-slic-n{parameters.Segments}-m{parameters.Compactness:R}-i{parameters.Iterations}-{Key(data.Digest, parameters)}"));

    /// <summary>The path of one split's table in a cache directory (<paramref name="split"/>: train or test).</summary>
    public static string TablePath(string directory, string split, string table) =>
        Path.Combine(directory, $"{split}-{(table == NodesTable ? "nodes" : "edges")}.parquet");

    /// <summary>
    /// The graphs of every image of <paramref name="data"/> (whole splits, whatever limit a run takes
    /// later): read from the cache when it holds them, else computed and cached.
    /// </summary>
    public static SuperpixelGraphs Load(ImageDataset data, SlicParameters parameters, string artifacts, Action<string> log)
    {
        parameters.Validate();
        if (data.Train.Channels != 1)
            throw new SettingException(nameof(Thermo.Trainer.Training.TrainConfig.Graph), "", $"SLIC superpixels are computed here for single-channel images; {data.Name} has {data.Train.Channels} channels (use tiles)");
        var directory = DirectoryOf(artifacts, data, parameters);
        if (TryRead(directory, data, parameters, log) is { } cached) return cached;
        log($"computing SLIC superpixels ({parameters.Segments} segments, compactness {parameters.Compactness.ToString(CultureInfo.InvariantCulture)}) of {data.Train.Count + data.Test.Count} {data.Name} images …");
        var clock = Stopwatch.StartNew();
        var graphs = new SuperpixelGraphs(SuperpixelGraph.OfSplit(data.Train, parameters), SuperpixelGraph.OfSplit(data.Test, parameters));
        double seconds = clock.Elapsed.TotalSeconds;
        try
        {
            Write(directory, data, parameters, graphs, seconds);
        }
        catch (IOException) when (TryRead(directory, data, parameters, _ => { }) is not null)
        {
            // Another process cached the same graphs first; its files are equal to these.
        }
        var nodes = graphs.Train.Concat(graphs.Test).Select(g => g.Nodes).ToArray();
        log(string.Create(CultureInfo.InvariantCulture,
            $"SLIC superpixels in {seconds:F1} s: {nodes.Average():F1} nodes per image (min {nodes.Min()}, max {nodes.Max()}), cached in {directory}"));
        return graphs;
    }

    /// <summary>Writes the graphs as the cache directory of <paramref name="data"/> (replacing one there).</summary>
    public static void Write(string directory, ImageDataset data, SlicParameters parameters, SuperpixelGraphs graphs, double seconds)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(directory))!);
        AtomicFiles.ReplaceDirectory(directory, temp =>
        {
            foreach (var (split, splitGraphs) in new[] { ("train", graphs.Train), ("test", graphs.Test) })
            {
                WriteNodes(TablePath(temp, split, NodesTable), splitGraphs);
                WriteEdges(TablePath(temp, split, EdgesTable), splitGraphs);
            }
            File.WriteAllText(Path.Combine(temp, DescriptionFile), JsonSerializer.Serialize(new
            {
                key = Key(data.Digest, parameters), dataset = data.Name, digest = data.Digest,
                segments = parameters.Segments, compactness = parameters.Compactness, iterations = parameters.Iterations,
                algorithm = AlgorithmVersion, trainImages = graphs.Train.Length, testImages = graphs.Test.Length, seconds,
            }, new JsonSerializerOptions { WriteIndented = true }));
        });
    }

    static void WriteNodes(string path, SuperpixelGraph[] graphs) =>
        Table.Write(path, NodesTable,
            Column.Ints("image", graphs.SelectMany((g, i) => Enumerable.Repeat(i, g.Nodes)).ToArray()),
            Column.Ints("node", graphs.SelectMany(g => Enumerable.Range(0, g.Nodes)).ToArray()),
            Column.Floats("intensity", graphs.SelectMany(g => g.Intensity).ToArray()),
            Column.Floats("x", graphs.SelectMany(g => g.X).ToArray()),
            Column.Floats("y", graphs.SelectMany(g => g.Y).ToArray()));

    static void WriteEdges(string path, SuperpixelGraph[] graphs) =>
        Table.Write(path, EdgesTable,
            Column.Ints("image", graphs.SelectMany((g, i) => Enumerable.Repeat(i, g.Edges)).ToArray()),
            Column.Ints("source", graphs.SelectMany(g => g.Sources).ToArray()),
            Column.Ints("target", graphs.SelectMany(g => g.Targets).ToArray()));

    /// <summary>The cached graphs, or null (said in the log) when the directory is missing, holds another
    /// key, another number of images, or unreadable tables.</summary>
    static SuperpixelGraphs? TryRead(string directory, ImageDataset data, SlicParameters parameters, Action<string> log)
    {
        if (!Directory.Exists(directory)) return null;
        try
        {
            var description = Path.Combine(directory, DescriptionFile);
            using var json = JsonDocument.Parse(File.ReadAllText(description));
            if (json.RootElement.GetProperty("key").GetString() != Key(data.Digest, parameters))
                throw new ArtifactException($"{description}: describes graphs of other data or parameters", description);
            return new SuperpixelGraphs(
                ReadSplit(directory, "train", data.Train.Count),
                ReadSplit(directory, "test", data.Test.Count));
        }
        catch (Exception e) when (e is ArtifactException or IOException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            log($"the cached superpixels in {directory} cannot be used ({e.Message}); computing them again");
            return null;
        }
    }

    /// <summary>The graphs of one split, checked to be in order: images 0…count−1, nodes 0…n−1 of each.</summary>
    public static SuperpixelGraph[] ReadSplit(string directory, string split, int count)
    {
        string nodesPath = TablePath(directory, split, NodesTable), edgesPath = TablePath(directory, split, EdgesTable);
        var nodes = Table.Read(nodesPath, NodesTable);
        var edges = Table.Read(edgesPath, EdgesTable);
        int[] image = Table.GetInts(nodes, "image", nodesPath), node = Table.GetInts(nodes, "node", nodesPath);
        float[] intensity = Table.GetFloats(nodes, "intensity", nodesPath), x = Table.GetFloats(nodes, "x", nodesPath), y = Table.GetFloats(nodes, "y", nodesPath);
        int[] edgeImage = Table.GetInts(edges, "image", edgesPath), source = Table.GetInts(edges, "source", edgesPath), target = Table.GetInts(edges, "target", edgesPath);
        var graphs = new SuperpixelGraph[count];
        int row = 0, edgeRow = 0;
        for (int i = 0; i < count; i++)
        {
            int first = row;
            while (row < image.Length && image[row] == i)
            {
                if (node[row] != row - first) throw new ArtifactException($"{nodesPath}: image {i} lists node {node[row]} where node {row - first} belongs", nodesPath);
                row++;
            }
            if (row == first) throw new ArtifactException($"{nodesPath}: image {i} has no nodes (images must be listed 0…{count - 1} in order)", nodesPath);
            int firstEdge = edgeRow;
            while (edgeRow < edgeImage.Length && edgeImage[edgeRow] == i) edgeRow++;
            int nodeCount = row - first;
            var s = source[firstEdge..edgeRow];
            var t = target[firstEdge..edgeRow];
            for (int e = 0; e < s.Length; e++)
                if (s[e] < 0 || s[e] >= t[e] || t[e] >= nodeCount)
                    throw new ArtifactException($"{edgesPath}: image {i}'s edge {s[e]}–{t[e]} is not a pair source < target of its {nodeCount} nodes", edgesPath);
            graphs[i] = new SuperpixelGraph(intensity[first..row], x[first..row], y[first..row], s, t);
        }
        if (row != image.Length) throw new ArtifactException($"{nodesPath}: holds images beyond the split's {count} (or out of order)", nodesPath);
        if (edgeRow != edgeImage.Length) throw new ArtifactException($"{edgesPath}: holds edges of images beyond the split's {count} (or out of order)", edgesPath);
        return graphs;
    }
}
