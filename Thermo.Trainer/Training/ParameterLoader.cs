using Thermo.Analysis.Format;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Training;

/// <summary>Copies a snapshot's values into a model's parameters and buffers, by layer and tensor name.</summary>
public static class ParameterLoader
{
    /// <summary>(layer, tensor) of a TorchSharp parameter or buffer name such as <c>conv1.weight</c>.</summary>
    public static (string Layer, string Tensor) SplitName(string name)
    {
        int dot = name.LastIndexOf('.');
        return dot < 0 ? (name, name) : (name[..dot], name[(dot + 1)..]);
    }

    /// <summary>
    /// Loads every parameter and buffer of <paramref name="model"/> from <paramref name="snapshot"/>;
    /// throws <see cref="ThermoException"/> naming <paramref name="source"/> when one is missing or has
    /// another shape (a snapshot written with --snapshot-layers, or of another model).
    /// </summary>
    public static void Load(nn.Module<Tensor, Tensor> model, Snapshot snapshot, string source)
    {
        var byName = WithCurrentAttentionNames(snapshot.Tensors).ToDictionary(t => (t.Layer, t.Tensor));
        using var noGrad = no_grad();
        void Copy(string name, Tensor target)
        {
            var key = SplitName(name);
            if (!byName.TryGetValue(key, out var t))
                throw new ThermoException($"{source}: holds no {name}; re-evaluating a model needs every parameter and buffer (were only some of the run's layers snapshotted?)");
            var shape = target.shape.Select(d => (int)d).ToArray();
            if (!shape.SequenceEqual(t.Shape))
                throw new ThermoException($"{source}: {name} has shape [{string.Join("×", t.Shape)}], the model's is [{string.Join("×", shape)}]");
            using var values = tensor(t.Values, target.shape).to(target.dtype).to(target.device);
            target.copy_(values);
        }
        foreach (var (name, p) in model.named_parameters()) Copy(name, p);
        foreach (var (name, b) in model.named_buffers()) Copy(name, b);
    }

    /// <summary>
    /// Whether a layer's tensors, in registration order, are a gat layer's from before its attention
    /// vectors took PyTorch Geometric's names: such runs registered the centre's vector first and called
    /// it <c>att_src</c>; the current layer registers the centre's vector first as <c>att_dst</c>. The
    /// order is what tells them apart, since both name sets are the same.
    /// </summary>
    public static bool IsPreRenameAttention(IReadOnlyList<string> tensorsInOrder)
    {
        var names = tensorsInOrder.ToList();
        int source = names.IndexOf("att_src"), centre = names.IndexOf("att_dst");
        return source >= 0 && centre >= 0 && source < centre;
    }

    /// <summary>A snapshot's tensors with a pre-rename gat layer's two attention vectors named as the
    /// current layer names them (its <c>att_src</c> scored the centre: it is now <c>att_dst</c>), so that
    /// such a run's model is rebuilt with each vector in its role.</summary>
    static IEnumerable<TensorSnapshot> WithCurrentAttentionNames(TensorSnapshot[] tensors) =>
        tensors.GroupBy(t => t.Layer).SelectMany(layer =>
            IsPreRenameAttention(layer.Select(t => t.Tensor).ToList())
                ? layer.Select(t => t.Tensor switch { "att_src" => new TensorSnapshot(t.Layer, "att_dst", t.Shape, t.Values), "att_dst" => new TensorSnapshot(t.Layer, "att_src", t.Shape, t.Values), _ => t })
                : layer);
}
