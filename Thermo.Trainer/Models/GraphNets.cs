using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Thermo.Trainer.Models;

/// <summary>The graphs gcn and gat can see an image as (<see cref="Training.TrainConfig.Graph"/>).</summary>
public static class ImageGraphs
{
    /// <summary>Per-image SLIC superpixels (<see cref="Data.Slic"/>, <see cref="Data.SuperpixelGraph"/>),
    /// about 75 nodes an image as in the paper's data: the default.</summary>
    public const string Slic = "slic";
    /// <summary>The fixed tiling of <see cref="TileGraph"/>: one graph shared by every image.</summary>
    public const string Tiles = "tiles";
    public static readonly string[] Names = [Slic, Tiles];

    /// <summary>Whether <paramref name="model"/> reads an image as a graph (gcn, gat).</summary>
    public static bool TakesGraph(string model) => model is "gcn" or "gat";

    /// <summary>The graph <paramref name="model"/> sees: <paramref name="graph"/>, or <see cref="Slic"/> for
    /// a graph model given none; null for the other models (they read images).</summary>
    public static string? Resolve(string model, string? graph) => TakesGraph(model) ? graph ?? Slic : graph;
}

/// <summary>
/// The tiling graph the graph networks see an image as on <see cref="ImageGraphs.Tiles"/>. Construction (fixed, so it is built once
/// per model and every image shares it): the image is cut into square tiles of <c>tile</c>×<c>tile</c>
/// pixels (MNIST: 4×4 tiles, a 7×7 grid of 49 nodes); a node's features are its tile's mean intensity
/// per channel; each node is joined to its <c>k</c> nearest nodes by the distance between tile centroids
/// (ties broken by node index), and the edges are made symmetric. Every image has the same graph, so
/// the networks read images and hold the graph as a constant.
/// </summary>
public sealed class TileGraph
{
    public int Nodes { get; }
    /// <summary>Symmetric 0/1 adjacency without self loops, [N, N].</summary>
    public float[,] Adjacency { get; }
    readonly int tile;

    public TileGraph(int height, int width, int tile = 4, int k = 8)
    {
        if (height % tile != 0 || width % tile != 0) throw new ThermoException($"graph models tile images into {tile}×{tile} superpixels; {height}×{width} is not a multiple");
        this.tile = tile;
        int rows = height / tile, columns = width / tile;
        Nodes = rows * columns;
        Adjacency = new float[Nodes, Nodes];
        for (int i = 0; i < Nodes; i++)
        {
            var nearest = Enumerable.Range(0, Nodes).Where(j => j != i)
                .OrderBy(j => Math.Pow(i / columns - j / columns, 2) + Math.Pow(i % columns - j % columns, 2)).ThenBy(j => j).Take(k);
            foreach (var j in nearest) Adjacency[i, j] = Adjacency[j, i] = 1;
        }
    }

    /// <summary>Node features of a batch of images: [B, C, H, W] → [B, N, C] (mean intensity of each tile).</summary>
    public Tensor Features(Tensor images) =>
        functional.avg_pool2d(images, tile).flatten(2).transpose(1, 2);

    /// <summary>GCN's symmetric normalisation D^−½ (A + I) D^−½ of an adjacency matrix.</summary>
    public static Tensor NormalizedAdjacency(float[,] adjacency)
    {
        using var a = tensor(adjacency);
        return GcnLayer.Propagation(a);
    }
}

/// <summary>A tensor a module uses but does not own as a parameter or buffer: TorchSharp registers every
/// Tensor field as a buffer (which would put the graph into every snapshot), not one held in here.</summary>
sealed class GraphConstant(Tensor value)
{
    public Tensor Value { get; } = value;

    /// <summary>The tensor on <paramref name="device"/>: itself when it is there already (no wrapper a dispose scope could free).</summary>
    public Tensor On(Device device) => Value.device == device ? Value : Value.to(device);

    /// <summary>As <see cref="On"/>, and also in <paramref name="like"/>'s element type (the float64
    /// reference pass of the native self-check).</summary>
    public Tensor Like(Tensor like) => Value.device == like.device && Value.dtype == like.dtype ? Value : Value.to(like.dtype, like.device);
}

/// <summary>A graph convolution (Kipf and Welling): H' = Â H Wᵀ + b with Â = D^−½ (A + I) D^−½, given per
/// call (one Â [N, N] for all graphs of a batch, or one per graph [B, N, N]). Its weight is [out, in], so a
/// snapshot's units are the rows (one per output feature).</summary>
public sealed class GcnLayer : Module<Tensor, Tensor, Tensor>
{
    private readonly Parameter weight, bias;

    public GcnLayer(string name, int inputs, int outputs) : base(name)
    {
        weight = Parameter(empty(outputs, inputs));
        bias = Parameter(zeros(outputs));
        init.xavier_uniform_(weight);
        RegisterComponents();
    }

    /// <summary>Â = D^−½ (A + I) D^−½ of a 0/1 adjacency without self-loops, [N, N] or [B, N, N]; every node
    /// (a padding node too) gets its self-loop, so no degree is zero.</summary>
    public static Tensor Propagation(Tensor adjacency)
    {
        using var scope = NewDisposeScope();
        long n = adjacency.shape[^1];
        var a = adjacency + eye(n, dtype: adjacency.dtype, device: adjacency.device);
        var d = a.sum(-1).pow(-0.5);
        return (d.unsqueeze(-1) * a * d.unsqueeze(-2)).MoveToOuterDisposeScope();
    }

    /// <summary>H' for node features <paramref name="h"/> [B, N, in] and <paramref name="propagation"/> Â.</summary>
    public override Tensor forward(Tensor h, Tensor propagation) => matmul(propagation, matmul(h, weight.t())) + bias;
}

/// <summary>A graph attention convolution (Veličković et al.) with <c>heads</c> heads concatenated:
/// e_ij = LeakyReLU(a_dstᵀ W h_i + a_srcᵀ W h_j) over j ∈ N(i) ∪ {i}, α = softmax_j e, h_i' = Σ_j α_ij W h_j.
/// Named as PyTorch Geometric's GATConv names them: messages flow from the source (neighbour) j to the
/// destination (centre) i, so <c>att_src</c> multiplies the neighbour and <c>att_dst</c> the centre, and a
/// layer's <c>att_src</c> temperature reads as PyG's. (Runs made before this naming have the two swapped;
/// what the network learns is the same.) <c>att_dst</c> is created and initialised first, as the
/// centre's vector always was, so that a seed draws the same initial values.
/// The neighbourhoods come per call as a boolean mask of allowed (i, j), self-loops included, that
/// broadcasts against [B, heads, N, N]: [N, N] for one graph shared by the batch, [B, 1, N, N] per graph.</summary>
public sealed class GatLayer : Module<Tensor, Tensor, Tensor>
{
    private readonly Parameter weight, att_dst, att_src, bias;
    private readonly int heads, outputs;

    public GatLayer(string name, int inputs, int outputs, int heads) : base(name)
    {
        (this.heads, this.outputs) = (heads, outputs);
        weight = Parameter(empty(heads * outputs, inputs));
        att_dst = Parameter(empty(heads, outputs));
        att_src = Parameter(empty(heads, outputs));
        bias = Parameter(zeros(heads * outputs));
        init.xavier_uniform_(weight);
        init.xavier_uniform_(att_dst);
        init.xavier_uniform_(att_src);
        RegisterComponents();
    }

    /// <summary>The mask of an adjacency, [N, N] or [B, N, N]: each node's neighbours and itself (so a
    /// padding node, which has no neighbours, attends to itself alone and its softmax stays finite).</summary>
    public static Tensor Neighbourhoods(Tensor adjacency)
    {
        using var scope = NewDisposeScope();
        long n = adjacency.shape[^1];
        var allowed = (adjacency + eye(n, dtype: adjacency.dtype, device: adjacency.device)).gt(0);
        return (adjacency.dim() == 3 ? allowed.unsqueeze(1) : allowed).MoveToOuterDisposeScope();
    }

    /// <summary>Attention coefficients α, [B, heads, N, N]; each row sums to one over the node's neighbourhood.</summary>
    public Tensor Attention(Tensor h, Tensor allowed)
    {
        using var scope = NewDisposeScope();
        var projected = matmul(h, weight.t()).view(h.shape[0], h.shape[1], heads, outputs);   // [B, N, H, O]
        var centre = (projected * att_dst).sum(-1).transpose(1, 2);                             // [B, H, N]
        var neighbour = (projected * att_src).sum(-1).transpose(1, 2);
        var scores = functional.leaky_relu(centre.unsqueeze(-1) + neighbour.unsqueeze(-2), 0.2);  // [B, H, N (i), N (j)]
        scores = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity);
        return functional.softmax(scores, -1).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor h, Tensor allowed)
    {
        using var scope = NewDisposeScope();
        var projected = matmul(h, weight.t()).view(h.shape[0], h.shape[1], heads, outputs).transpose(1, 2);   // [B, H, N, O]
        var mixed = matmul(Attention(h, allowed), projected);                                                 // [B, H, N, O]
        return (mixed.transpose(1, 2).reshape(h.shape[0], h.shape[1], heads * outputs) + bias).MoveToOuterDisposeScope();
    }
}

/// <summary>Pooling over the nodes of each graph of a batch [B, N, F] → [B, F], padding left out when a
/// node indicator [B, N] (1 node, 0 padding) is given.</summary>
static class NodePooling
{
    public static Tensor Mean(Tensor h, Tensor? nodes) =>
        nodes is null ? h.mean([1]) : (h * nodes.unsqueeze(-1)).sum(1) / nodes.sum(1, keepdim: true);

    public static Tensor Max(Tensor h, Tensor? nodes) =>
        nodes is null ? h.amax([1]) : h.masked_fill(nodes.unsqueeze(-1).eq(0), double.NegativeInfinity).amax([1]);
}

/// <summary>
/// The graph-network paper's GCN on superpixel graphs: four graph convolutions 1→32→64→64→64 (per channel
/// of intensity in), tanh, then mean and max pooling over each graph's nodes concatenated (128) and a
/// linear layer <c>fc</c> to the classes. With <see cref="ImageGraphs.Tiles"/> it reads images
/// [B, C, H, W] and propagates over the one <see cref="TileGraph"/>; with <see cref="ImageGraphs.Slic"/>
/// it reads <see cref="PaddedGraphs"/> and propagates over each image's own graph.
/// </summary>
public sealed class GcnNet : Module<Tensor, Tensor>
{
    private readonly TileGraph? tiles;
    private readonly GraphConstant? tilePropagation;
    private readonly GcnLayer gcn1, gcn2, gcn3, gcn4;
    private readonly Linear fc;

    public GcnNet(int channels, int height, int width, int classes, string graph) : base("gcn")
    {
        (tiles, tilePropagation, int features) = GraphInput.Of(graph, channels, height, width, TileGraph.NormalizedAdjacency);
        gcn1 = new GcnLayer("gcn1", features, 32);
        gcn2 = new GcnLayer("gcn2", 32, 64);
        gcn3 = new GcnLayer("gcn3", 64, 64);
        gcn4 = new GcnLayer("gcn4", 64, 64);
        fc = Linear(128, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        Tensor h, propagation;
        Tensor? nodes = null;
        if (tiles is not null)
            (h, propagation) = (tiles.Features(input), tilePropagation!.Like(input));
        else
        {
            (h, var adjacency, nodes) = PaddedGraphs.Unpack(input);
            propagation = GcnLayer.Propagation(adjacency);
        }
        foreach (var layer in new[] { gcn1, gcn2, gcn3, gcn4 }) h = tanh(layer.forward(h, propagation));
        var pooled = cat([NodePooling.Mean(h, nodes), NodePooling.Max(h, nodes)], 1);
        return fc.forward(pooled).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The graph-network paper's GAT (its Fig. 5): three attention convolutions of 2 heads each,
/// concatenated — GATConv(1, 32, heads=2) → GATConv(64, 64, heads=2) → GATConv(128, 64, heads=2) — with
/// ReLU, mean pooling over each graph's nodes, and three linear layers 128→32→32→classes. Reads images
/// (tiles) or padded graphs (slic) as <see cref="GcnNet"/> does; attention never crosses from one graph
/// of a batch to another, nor to padding.
/// </summary>
public sealed class GatNet : Module<Tensor, Tensor>
{
    private readonly TileGraph? tiles;
    private readonly GraphConstant? tileNeighbourhoods;
    private readonly GatLayer gat1, gat2, gat3;
    private readonly Linear fc1, fc2, fc3;

    public GatNet(int channels, int height, int width, int classes, string graph) : base("gat")
    {
        (tiles, tileNeighbourhoods, int features) = GraphInput.Of(graph, channels, height, width, adjacency =>
        {
            using var a = tensor(adjacency);
            return GatLayer.Neighbourhoods(a);
        });
        gat1 = new GatLayer("gat1", features, 32, 2);
        gat2 = new GatLayer("gat2", 64, 64, 2);
        gat3 = new GatLayer("gat3", 128, 64, 2);
        fc1 = Linear(128, 32);
        fc2 = Linear(32, 32);
        fc3 = Linear(32, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        Tensor h, allowed;
        Tensor? nodes = null;
        if (tiles is not null)
            (h, allowed) = (tiles.Features(input), tileNeighbourhoods!.On(input.device));
        else
        {
            (h, var adjacency, nodes) = PaddedGraphs.Unpack(input);
            allowed = GatLayer.Neighbourhoods(adjacency);
        }
        foreach (var layer in new[] { gat1, gat2, gat3 }) h = functional.relu(layer.forward(h, allowed));
        var y = functional.relu(fc1.forward(NodePooling.Mean(h, nodes)));
        y = functional.relu(fc2.forward(y));
        return fc3.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>What a graph network's constructor needs of its graph: for tiles, the tiling and the layers'
/// constant made from its adjacency; for slic, nothing (each batch brings its graphs); and the number of
/// input features per node (the channels' mean intensities).</summary>
static class GraphInput
{
    public static (TileGraph? Tiles, GraphConstant? Constant, int Features) Of(string graph, int channels, int height, int width, Func<float[,], Tensor> constant)
    {
        switch (graph)
        {
            case ImageGraphs.Tiles:
                var tiles = new TileGraph(height, width);
                return (tiles, new GraphConstant(constant(tiles.Adjacency)), channels);
            case ImageGraphs.Slic:
                if (channels != 1)
                    throw new Thermo.Analysis.SettingException(nameof(Training.TrainConfig.Graph), "", $"slic superpixels are computed for single-channel images, these have {channels} channels (use tiles)");
                return (null, null, 1);
            default:
                throw new Thermo.Analysis.SettingException(nameof(Training.TrainConfig.Graph), "", $"unknown graph '{graph}' (known: {string.Join(", ", ImageGraphs.Names)})");
        }
    }
}
