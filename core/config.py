"""One typed config tree: the single source of truth for a run.

Every setting is declared once here, with its default, its bounds and its help text in
English and Vietnamese. The GUI form, the YAML presets, the CLI's ``--set`` keys and the
run folder's ``config.yaml`` are all derived from these dataclasses, so they cannot
disagree. Field names are the libraries' own argument names (peft's ``LoraConfig``,
transformers' ``TrainingArguments`` / trl's ``SFTConfig``, ``BitsAndBytesConfig``), so
building those objects is a plain unpacking.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from core.errors import ConfigError


def opt(default: Any, *, en: str, vi: str, label_en: str, label_vi: str, group: str = "advanced",
        min: float | None = None, max: float | None = None, step: float | None = None,
        default_factory: Any = None) -> Any:
    """Declare a config field with its help, label, group and bounds in one place."""
    meta = {"help": {"en": en, "vi": vi}, "label": {"en": label_en, "vi": label_vi}, "group": group,
            "min": min, "max": max, "step": step}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


Dtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass
class ModelConfig:
    name_or_path: str = opt(
        "embedded:smollm2-135m-instruct", group="basic",
        label_en="Base model", label_vi="Mô hình gốc",
        en="An embedded model (embedded:smollm2-135m-instruct, embedded:gemma3-270m), a Hugging Face "
           "Hub id (Qwen/Qwen2.5-0.5B-Instruct) or a local folder, e.g. a previous run's merged/ folder.",
        vi="Mô hình có sẵn (embedded:smollm2-135m-instruct, embedded:gemma3-270m), mã mô hình trên "
           "Hugging Face Hub (Qwen/Qwen2.5-0.5B-Instruct) hoặc một thư mục, ví dụ thư mục merged/ của lần chạy trước.")
    load_in_4bit: bool = opt(
        False, group="basic", label_en="Load in 4-bit (QLoRA)", label_vi="Nạp 4-bit (QLoRA)",
        en="Quantize the frozen base weights to 4 bits with bitsandbytes (QLoRA): about 4x less memory "
           "for the weights, slower steps. The adapter itself stays in full precision.",
        vi="Lượng tử hoá trọng số gốc (đóng băng) xuống 4 bit bằng bitsandbytes (QLoRA): bộ nhớ cho trọng số "
           "giảm khoảng 4 lần, mỗi bước chậm hơn. Bản thân adapter vẫn ở độ chính xác đầy đủ.")
    load_in_8bit: bool = opt(
        False, label_en="Load in 8-bit", label_vi="Nạp 8-bit",
        en="Quantize the frozen base weights to 8 bits (LLM.int8). Needs a CUDA GPU; cannot be combined with 4-bit.",
        vi="Lượng tử hoá trọng số gốc xuống 8 bit (LLM.int8). Cần GPU CUDA; không dùng cùng 4-bit.")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = opt(
        "nf4", label_en="4-bit type", label_vi="Kiểu 4-bit",
        en="nf4 (NormalFloat4) suits normally distributed weights and is the QLoRA paper's choice; fp4 is plain 4-bit float.",
        vi="nf4 (NormalFloat4) hợp với trọng số phân bố chuẩn, là lựa chọn của bài báo QLoRA; fp4 là số thực 4 bit thông thường.")
    bnb_4bit_use_double_quant: bool = opt(
        True, label_en="Double quantization", label_vi="Lượng tử hoá kép",
        en="Also quantize the quantization constants: saves about 0.4 bit per parameter at no measurable quality cost.",
        vi="Lượng tử hoá cả các hằng số lượng tử: tiết kiệm khoảng 0,4 bit mỗi tham số mà gần như không giảm chất lượng.")
    bnb_4bit_compute_dtype: Dtype = opt(
        "auto", label_en="4-bit compute dtype", label_vi="Kiểu số khi tính (4-bit)",
        en="The dtype the 4-bit weights are dequantized to for each matmul. auto: bfloat16 on a GPU that supports it, float32 on CPU.",
        vi="Kiểu số mà trọng số 4-bit được giải lượng tử sang khi nhân ma trận. auto: bfloat16 trên GPU hỗ trợ, float32 trên CPU.")
    dtype: Dtype = opt(
        "auto", label_en="Weights dtype", label_vi="Kiểu số của trọng số",
        en="Precision of the base weights. auto: bfloat16 on a GPU that supports it, float16 on older GPUs, float32 on CPU.",
        vi="Độ chính xác của trọng số gốc. auto: bfloat16 trên GPU hỗ trợ, float16 trên GPU cũ, float32 trên CPU.")
    trust_remote_code: bool = opt(
        False, label_en="Trust remote code", label_vi="Tin mã từ xa",
        en="Allow a Hub model to run its own Python code when loading. Off by default: turn it on only for a model you trust.",
        vi="Cho phép mô hình trên Hub chạy mã Python riêng khi nạp. Mặc định tắt: chỉ bật với mô hình bạn tin cậy.")


@dataclass
class LoraSection:
    r: int = opt(
        16, group="basic", min=1, max=1024, step=1, label_en="Rank r", label_vi="Hạng r",
        en="Rank of the low-rank update ΔW = B·A. 8–16 suits simple tasks; 64+ for new formats or knowledge. "
           "Higher rank learns more and can forget more.",
        vi="Hạng của phần cập nhật hạng thấp ΔW = B·A. 8–16 hợp với tác vụ đơn giản; 64 trở lên cho định dạng "
           "hoặc kiến thức mới. Hạng cao học được nhiều hơn nhưng cũng dễ quên hơn.")
    lora_alpha: int = opt(
        32, group="basic", min=1, max=4096, step=1, label_en="Alpha", label_vi="Alpha",
        en="Scaling of the update: ΔW is multiplied by alpha/r (alpha/√r with rsLoRA). Keep alpha/r between 1 and 4.",
        vi="Hệ số nhân của phần cập nhật: ΔW được nhân với alpha/r (alpha/√r khi bật rsLoRA). Nên giữ alpha/r trong khoảng 1 đến 4.")
    lora_dropout: float = opt(
        0.05, min=0.0, max=0.9, step=0.01, label_en="LoRA dropout", label_vi="Dropout của LoRA",
        en="Dropout on the adapter's input: a little (0.05–0.1) helps small datasets generalise.",
        vi="Dropout ở đầu vào adapter: một chút (0,05–0,1) giúp dữ liệu nhỏ tổng quát hoá tốt hơn.")
    bias: Literal["none", "all", "lora_only"] = opt(
        "none", label_en="Train biases", label_vi="Huấn luyện bias",
        en="Which bias terms are trained. none keeps the merge exact and the adapter small.",
        vi="Những bias nào được huấn luyện. none giữ cho việc gộp chính xác và adapter nhỏ.")
    target_modules: Union[str, list[str]] = opt(
        "all-linear", group="basic", label_en="Target modules", label_vi="Các lớp được gắn LoRA",
        en="Layers that get an adapter: all-linear (every projection but the output head), or a list such as "
           "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.",
        vi="Các lớp được gắn adapter: all-linear (mọi phép chiếu trừ đầu ra), hoặc danh sách như "
           "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.")
    modules_to_save: list[str] = opt(
        None, default_factory=list, label_en="Fully trained modules", label_vi="Các lớp huấn luyện toàn bộ",
        en="Modules trained in full next to the adapter, e.g. lm_head and embed_tokens for continued pre-training "
           "on a new language or vocabulary. They cost much more memory and disk.",
        vi="Các lớp được huấn luyện toàn bộ cùng adapter, ví dụ lm_head và embed_tokens khi tiền huấn luyện tiếp "
           "trên ngôn ngữ hay từ vựng mới. Chúng tốn nhiều bộ nhớ và dung lượng hơn hẳn.")
    use_rslora: bool = opt(
        False, group="basic", label_en="rsLoRA", label_vi="rsLoRA",
        en="Rank-stabilised LoRA: scale by alpha/√r instead of alpha/r, so high ranks keep learning. Recommended at r ≥ 64.",
        vi="LoRA ổn định theo hạng: nhân với alpha/√r thay vì alpha/r để hạng cao vẫn học tốt. Nên dùng khi r ≥ 64.")
    use_dora: bool = opt(
        False, label_en="DoRA", label_vi="DoRA",
        en="Weight-decomposed LoRA: learns a magnitude and a direction separately. Often a little better, about 2x slower.",
        vi="LoRA phân rã trọng số: học riêng độ lớn và hướng. Thường tốt hơn một chút, chậm hơn khoảng 2 lần.")
    init_lora_weights: Literal["default", "gaussian", "olora", "pissa", "pissa_niter_4", "orthogonal"] = opt(
        "default", label_en="Adapter initialisation", label_vi="Khởi tạo adapter",
        en="default: B = 0 so training starts from the base model. olora / pissa start from the weights' principal "
           "directions (they also modify the base weights, which the saved adapter accounts for).",
        vi="default: B = 0 nên huấn luyện bắt đầu đúng từ mô hình gốc. olora / pissa bắt đầu từ các hướng chính của "
           "trọng số (chúng cũng sửa trọng số gốc, adapter đã lưu có tính đến điều này).")
    layers_to_transform: list[int] = opt(
        None, default_factory=list, label_en="Only these layers", label_vi="Chỉ các tầng này",
        en="Indices of the transformer blocks to adapt; empty means all blocks.",
        vi="Chỉ số các khối transformer được gắn adapter; để trống nghĩa là tất cả.")


Template = Literal["auto", "mcq_generation", "cpt", "alpaca", "chat", "price_qa", "text"]


@dataclass
class DataConfig:
    source: str = opt(
        "sample:vi_informatics_mcq", group="basic", label_en="Dataset", label_vi="Bộ dữ liệu",
        en="A bundled sample (sample:vi_informatics_mcq, sample:informatics_book, sample:books_price), a local "
           "CSV / JSON / JSONL / Parquet file, or a Hugging Face Hub dataset id.",
        vi="Bộ dữ liệu mẫu có sẵn (sample:vi_informatics_mcq, sample:informatics_book, sample:books_price), tệp "
           "CSV / JSON / JSONL / Parquet trên máy, hoặc mã bộ dữ liệu trên Hugging Face Hub.")
    hub_split: str = opt(
        "train", label_en="Hub split", label_vi="Phần dữ liệu trên Hub",
        en="For a Hub dataset: which split to load.", vi="Với bộ dữ liệu trên Hub: nạp phần (split) nào.")
    column_map: dict[str, str] = opt(
        None, default_factory=dict, label_en="Column mapping", label_vi="Ánh xạ cột",
        en="Which column plays which role (question, answer_a…answer_d, correct_answer, context, title, instruction, "
           "input, output, messages, description, price, text). Empty: detected automatically.",
        vi="Cột nào đóng vai trò gì (question, answer_a…answer_d, correct_answer, context, title, instruction, input, "
           "output, messages, description, price, text). Để trống: tự nhận diện.")
    template: Template = opt(
        "auto", group="basic", label_en="Template", label_vi="Mẫu định dạng",
        en="How a row becomes training text. auto picks the template that fits the detected schema "
           "(MCQ → Vietnamese MCQ generation, title+context → continued pre-training, …).",
        vi="Cách một dòng dữ liệu thành văn bản huấn luyện. auto chọn mẫu hợp với cấu trúc đã nhận diện "
           "(MCQ → sinh câu hỏi trắc nghiệm tiếng Việt, title+context → tiền huấn luyện tiếp, …).")
    use_chat_template: bool = opt(
        False, label_en="Use the model's chat template", label_vi="Dùng mẫu hội thoại của mô hình",
        en="Wrap prompt and answer in the model's own chat template (for instruct models). Off: a plain prompt.",
        vi="Bọc câu lệnh và câu trả lời bằng mẫu hội thoại của chính mô hình (cho mô hình instruct). Tắt: câu lệnh thường.")
    system_prompt: str = opt(
        "", label_en="System prompt", label_vi="Lời nhắc hệ thống",
        en="Optional system message, used with the chat template.", vi="Tin nhắn hệ thống tuỳ chọn, dùng với mẫu hội thoại.")
    max_length: int = opt(
        512, group="basic", min=16, max=32768, step=16, label_en="Max length (tokens)", label_vi="Độ dài tối đa (token)",
        en="Training sequences are cut to this many tokens. Memory and time grow with it.",
        vi="Chuỗi huấn luyện bị cắt ở số token này. Bộ nhớ và thời gian tăng theo nó.")
    min_tokens: int = opt(
        0, min=0, max=32768, step=1, label_en="Drop rows shorter than (tokens)", label_vi="Bỏ dòng ngắn hơn (token)",
        en="Rows whose formatted text has fewer tokens are dropped. 0: keep all.",
        vi="Bỏ các dòng có văn bản đã định dạng ít token hơn số này. 0: giữ tất cả.")
    max_tokens: int = opt(
        0, min=0, max=32768, step=1, label_en="Drop rows longer than (tokens)", label_vi="Bỏ dòng dài hơn (token)",
        en="Rows whose formatted text has more tokens are dropped instead of truncated. 0: keep all.",
        vi="Bỏ (thay vì cắt) các dòng có văn bản đã định dạng nhiều token hơn số này. 0: giữ tất cả.")
    clean: bool = opt(
        True, label_en="Clean text", label_vi="Làm sạch văn bản",
        en="Normalise Unicode (NFC), strip spaces and collapse runs of blank lines.",
        vi="Chuẩn hoá Unicode (NFC), bỏ khoảng trắng thừa và gộp các dòng trống liên tiếp.")
    validation_fraction: float = opt(
        0.1, min=0.0, max=0.5, step=0.01, label_en="Validation fraction", label_vi="Tỉ lệ dữ liệu kiểm định",
        en="Share of the training rows held out to measure eval loss (seeded split, by context when rows share one).",
        vi="Phần dòng huấn luyện giữ lại để đo eval loss (chia theo seed, theo đoạn văn khi nhiều dòng chung một đoạn).")
    max_samples: int = opt(
        0, min=0, max=10_000_000, step=1, label_en="Use at most N rows", label_vi="Dùng tối đa N dòng",
        en="Cap the number of training rows (after filtering) for a quick try. 0: all.",
        vi="Giới hạn số dòng huấn luyện (sau khi lọc) để thử nhanh. 0: tất cả.")
    packing: bool = opt(
        False, label_en="Packing", label_vi="Ghép chuỗi",
        en="Pack several short rows into one sequence of max_length: fewer padding tokens, faster on short data.",
        vi="Ghép nhiều dòng ngắn vào một chuỗi dài max_length: ít token đệm hơn, nhanh hơn với dữ liệu ngắn.")
    completion_only_loss: bool = opt(
        True, group="basic", label_en="Loss on the answer only", label_vi="Chỉ tính loss trên câu trả lời",
        en="Compute the loss on the response only: the prompt tokens get label -100 and are not learned.",
        vi="Chỉ tính loss trên phần trả lời: token của câu lệnh có nhãn -100 và không được học.")


Optim = Literal["adamw_torch", "adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit", "adafactor", "sgd"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"]


@dataclass
class TrainSection:
    num_train_epochs: float = opt(
        1.0, group="basic", min=0.01, max=100.0, step=0.1, label_en="Epochs", label_vi="Số epoch",
        en="Passes over the training data. Many epochs on a small set make the model forget what it knew.",
        vi="Số lần duyệt hết dữ liệu huấn luyện. Nhiều epoch trên dữ liệu nhỏ làm mô hình quên kiến thức cũ.")
    max_steps: int = opt(
        -1, min=-1, max=10_000_000, step=1, label_en="Max steps", label_vi="Số bước tối đa",
        en="Stop after this many optimizer steps; -1: use the epochs.",
        vi="Dừng sau số bước tối ưu này; -1: dùng số epoch.")
    learning_rate: float = opt(
        2e-4, group="basic", min=0.0, max=1.0, label_en="Learning rate", label_vi="Tốc độ học",
        en="Peak learning rate of the adapter. LoRA usually takes 1e-4 to 3e-4; lower (5e-5) for very high ranks.",
        vi="Tốc độ học cao nhất của adapter. LoRA thường dùng 1e-4 đến 3e-4; thấp hơn (5e-5) với hạng rất cao.")
    embedding_learning_rate: float = opt(
        0.0, min=0.0, max=1.0, label_en="Embedding learning rate", label_vi="Tốc độ học của embedding",
        en="Learning rate for fully trained embed_tokens / lm_head (continued pre-training); 0: the same as the "
           "learning rate. A smaller one (lr/2 to lr/10) protects the vocabulary.",
        vi="Tốc độ học cho embed_tokens / lm_head được huấn luyện toàn bộ (tiền huấn luyện tiếp); 0: bằng tốc độ học "
           "chung. Giá trị nhỏ hơn (lr/2 đến lr/10) bảo vệ bộ từ vựng.")
    per_device_train_batch_size: int = opt(
        4, group="basic", min=1, max=1024, step=1, label_en="Batch size", label_vi="Kích thước batch",
        en="Rows per forward pass. Memory grows with it; use gradient accumulation for a larger effective batch.",
        vi="Số dòng mỗi lượt tính. Bộ nhớ tăng theo nó; dùng tích luỹ gradient để có batch hiệu dụng lớn hơn.")
    gradient_accumulation_steps: int = opt(
        1, group="basic", min=1, max=1024, step=1, label_en="Gradient accumulation", label_vi="Tích luỹ gradient",
        en="Forward passes per optimizer step: effective batch = batch size × this, at no extra memory.",
        vi="Số lượt tính cho mỗi bước tối ưu: batch hiệu dụng = batch × số này, không tốn thêm bộ nhớ.")
    warmup_ratio: float = opt(
        0.0, min=0.0, max=0.5, step=0.01, label_en="Warm-up ratio", label_vi="Tỉ lệ khởi động",
        en="Fraction of the steps over which the learning rate rises from 0. Used when warm-up steps is 0.",
        vi="Phần số bước mà tốc độ học tăng dần từ 0. Dùng khi số bước khởi động bằng 0.")
    warmup_steps: int = opt(
        0, min=0, max=1_000_000, step=1, label_en="Warm-up steps", label_vi="Số bước khởi động",
        en="Steps over which the learning rate rises from 0; takes precedence over the ratio.",
        vi="Số bước tốc độ học tăng dần từ 0; được ưu tiên hơn tỉ lệ.")
    lr_scheduler_type: Scheduler = opt(
        "linear", label_en="LR schedule", label_vi="Lịch tốc độ học",
        en="How the learning rate decays after warm-up.", vi="Cách tốc độ học giảm sau giai đoạn khởi động.")
    optim: Optim = opt(
        "adamw_torch", label_en="Optimizer", label_vi="Bộ tối ưu",
        en="adamw_torch: standard. adamw_8bit / paged_*: bitsandbytes optimizers that save optimizer memory on a GPU.",
        vi="adamw_torch: chuẩn. adamw_8bit / paged_*: bộ tối ưu của bitsandbytes, tiết kiệm bộ nhớ trạng thái trên GPU.")
    weight_decay: float = opt(
        0.0, min=0.0, max=1.0, step=0.001, label_en="Weight decay", label_vi="Suy giảm trọng số",
        en="L2-style shrinkage of the trained weights each step (0.01 is common).",
        vi="Co nhỏ các trọng số được huấn luyện sau mỗi bước (thường dùng 0,01).")
    max_grad_norm: float = opt(
        1.0, min=0.0, max=100.0, step=0.1, label_en="Gradient clipping", label_vi="Cắt gradient",
        en="Clip the gradient norm to this value; 0 disables clipping.",
        vi="Cắt chuẩn của gradient về giá trị này; 0 là không cắt.")
    seed: int = opt(
        42, min=0, max=2**31 - 1, step=1, label_en="Seed", label_vi="Seed",
        en="Random seed for the data split, shuffling and adapter initialisation: the same seed gives the same run.",
        vi="Hạt giống ngẫu nhiên cho việc chia dữ liệu, xáo trộn và khởi tạo adapter: cùng seed cho cùng kết quả.")
    gradient_checkpointing: bool = opt(
        False, label_en="Gradient checkpointing", label_vi="Checkpoint gradient",
        en="Recompute activations in the backward pass: much less activation memory, about 30% slower.",
        vi="Tính lại activation khi lan truyền ngược: tốn ít bộ nhớ activation hơn nhiều, chậm hơn khoảng 30%.")
    logging_steps: int = opt(
        1, min=1, max=100_000, step=1, label_en="Log every N steps", label_vi="Ghi log mỗi N bước",
        en="How often the loss is recorded and plotted.", vi="Tần suất ghi và vẽ loss.")
    eval_steps: int = opt(
        0, min=0, max=100_000, step=1, label_en="Evaluate every N steps", label_vi="Đánh giá mỗi N bước",
        en="How often the validation loss is computed; 0: at the end only.",
        vi="Tần suất tính loss trên tập kiểm định; 0: chỉ ở cuối.")
    save_steps: int = opt(
        50, min=1, max=100_000, step=1, label_en="Checkpoint every N steps", label_vi="Lưu checkpoint mỗi N bước",
        en="How often a resumable checkpoint is written.", vi="Tần suất lưu checkpoint để có thể chạy tiếp.")
    save_total_limit: int = opt(
        2, min=1, max=1000, step=1, label_en="Checkpoints kept", label_vi="Số checkpoint giữ lại",
        en="Older checkpoints are deleted beyond this number.", vi="Các checkpoint cũ hơn bị xoá khi vượt quá số này.")
    skip_prompt_logits: bool = opt(
        True, label_en="Output layer on the answer only", label_vi="Chỉ tính lớp đầu ra trên câu trả lời",
        en="Compute the output layer (vocabulary logits) only where a token is learned: the same loss, much less "
           "time and memory when the prompt is long or the vocabulary large (Gemma: 262k tokens).",
        vi="Chỉ tính lớp đầu ra (logit trên bộ từ vựng) ở những vị trí có token được học: loss không đổi, nhưng "
           "nhanh và ít bộ nhớ hơn nhiều khi câu lệnh dài hoặc bộ từ vựng lớn (Gemma: 262 nghìn token).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = opt(
        "auto", label_en="Mixed precision", label_vi="Độ chính xác hỗn hợp",
        en="auto: bf16 on a GPU that supports it, fp16 on older GPUs, fp32 on CPU. bf16 also speeds up CPUs with "
           "native bfloat16 (AVX512-BF16, AMX), most with the weights dtype set to bfloat16 too.",
        vi="auto: bf16 trên GPU hỗ trợ, fp16 trên GPU cũ, fp32 trên CPU. bf16 cũng tăng tốc CPU hỗ trợ bfloat16 "
           "(AVX512-BF16, AMX), nhất là khi kiểu số của trọng số cũng là bfloat16.")


@dataclass
class RunConfig:
    """A whole run: what a preset, the form and ``config.yaml`` hold."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSection = field(default_factory=TrainSection)
    run_name: str = ""
    description: str = ""


SECTIONS = ("model", "lora", "data", "train")
TOP_LEVEL = ("run_name", "description")


# --------------------------------------------------------------------------- introspection

def section_fields(section: str) -> tuple[dataclasses.Field, ...]:
    """The dataclass fields of one section, in declaration order."""
    cls = type(getattr(RunConfig(), section))
    return dataclasses.fields(cls)


def field_spec(section: str, name: str) -> dataclasses.Field:
    for f in section_fields(section):
        if f.name == name:
            return f
    raise ConfigError(f"unknown setting `{section}.{name}`", field=f"{section}.{name}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_type(section: str, name: str) -> Any:
    cls = type(getattr(RunConfig(), section))
    return _hints(cls)[name]


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` type, else None."""
    return get_args(tp) if get_origin(tp) is Literal else None


# --------------------------------------------------------------------------- coercion

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Turn a YAML / CLI / form value into the field's declared type, or raise ConfigError."""
    origin = get_origin(tp)
    choices = literal_choices(tp)
    if choices is not None:
        if value not in choices:
            raise ConfigError(f"`{key}` must be one of {', '.join(map(str, choices))}, got {value!r}", field=key)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"`{key}` must be true or false, got {value!r}", field=key)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"`{key}` must be an integer, got {value!r}", field=key)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise ConfigError(f"`{key}` must be an integer, got {value!r}", field=key) from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"`{key}` must be a number, got {value!r}", field=key)
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"`{key}` must be a number, got {value!r}", field=key) from None
        if not math.isfinite(out):
            raise ConfigError(f"`{key}` must be a finite number, got {value!r}", field=key)
        return out
    if tp is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise ConfigError(f"`{key}` must be text, got {value!r}", field=key)
        return str(value)
    if origin is list:
        (item_tp,) = get_args(tp)
        if value is None or value == "":
            return []
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` must be a list, got {value!r}", field=key)
        return [_coerce(key, item_tp, v) for v in value]
    if origin is dict:
        if value is None or value == "":
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a mapping, got {value!r}", field=key)
        return {str(k): str(v) for k, v in value.items()}
    if origin in (Union, types.UnionType):  # str | list[str]: "all-linear" or a list
        if isinstance(value, str) and "," not in value:
            return value.strip()
        return _coerce(key, list[str], value)
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this file, not user input


def set_value(cfg: RunConfig, dotted: str, value: Any) -> None:
    """Set ``section.field`` (or a top-level key) from a raw value, coerced to the declared type."""
    if dotted in TOP_LEVEL:
        setattr(cfg, dotted, _coerce(dotted, str, value))
        return
    section, _, name = dotted.partition(".")
    if section not in SECTIONS or not name:
        raise ConfigError(f"unknown setting `{dotted}` (sections: {', '.join(SECTIONS)})", field=dotted)
    field_spec(section, name)  # raises on an unknown name
    setattr(getattr(cfg, section), name, _coerce(dotted, field_type(section, name), value))


def parse_set(expr: str) -> tuple[str, Any]:
    """``"lora.r=8"`` → ``("lora.r", 8)``; the value is read as YAML so lists and bools work."""
    if "=" not in expr:
        raise ConfigError(f"--set expects section.field=value, got {expr!r}", field=expr)
    key, _, raw = expr.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def from_dict(data: dict | None, *, base: RunConfig | None = None, source: str = "config") -> RunConfig:
    """Build a RunConfig from a nested mapping (a preset), rejecting unknown keys."""
    cfg = base if base is not None else RunConfig()
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}", field=source)
    errors = []
    for top, value in data.items():
        if top in TOP_LEVEL:
            set_value(cfg, top, value)
            continue
        if top not in SECTIONS:
            errors.append(f"unknown preset key `{top}` in {source} (allowed: {', '.join(SECTIONS + TOP_LEVEL)})")
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            errors.append(f"`{top}` in {source} must be a mapping, got {value!r}")
            continue
        for name, v in value.items():
            try:
                set_value(cfg, f"{top}.{name}", v)
            except ConfigError as e:
                errors.append(f"{e} in {source}")
    if errors:
        raise ConfigError("; ".join(errors), field=source)
    return cfg


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def diff_from_default(cfg: RunConfig) -> dict:
    """Only what differs from the defaults: what a saved preset holds."""
    full, default = to_dict(cfg), to_dict(RunConfig())
    out: dict = {}
    for key in TOP_LEVEL:
        if full[key] != default[key]:
            out[key] = full[key]
    for section in SECTIONS:
        delta = {k: v for k, v in full[section].items() if v != default[section][k]}
        if delta:
            out[section] = delta
    return out


def load_yaml(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a preset file and apply ``--set`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preset file not found: {path}", field=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read preset {path}: {e}", field=str(path)) from None
    cfg = from_dict(data, source=path.name)
    for expr in overrides or []:
        set_value(cfg, *parse_set(expr))
    return cfg


def dump_yaml(cfg: RunConfig, *, only_changes: bool = False) -> str:
    data = diff_from_default(cfg) if only_changes else to_dict(cfg)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


# --------------------------------------------------------------------------- validation

@dataclass
class Issue:
    """One validation finding: ``field`` is the dotted key, ``message`` names the value."""

    field: str
    message: str
    level: Literal["error", "warning"] = "error"
    code: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _bounds(cfg: RunConfig) -> list[Issue]:
    issues = []
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in section_fields(section):
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            value = getattr(obj, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            key = f"{section}.{f.name}"
            if lo is not None and value < lo:
                issues.append(Issue(key, f"must be ≥ {lo}, got {value}", code="min"))
            if hi is not None and value > hi:
                issues.append(Issue(key, f"must be ≤ {hi}, got {value}", code="max"))
    return issues


def validate(cfg: RunConfig, *, n_rows: int | None = None, stats: Any = None) -> list[Issue]:
    """Collect every error and warning, each naming its field and value.

    Args:
        cfg: the config to check.
        n_rows: number of training rows, when known, for data-size advice.
        stats: the data's token statistics (``core.data.TokenStats``), when known: answers cut by max_length.
    Returns:
        Errors first, then warnings; an empty list means all is well.
    """
    issues = _bounds(cfg)
    m, lo, d, t = cfg.model, cfg.lora, cfg.data, cfg.train
    err = lambda k, msg, code="": issues.append(Issue(k, msg, "error", code))  # noqa: E731
    warn = lambda k, msg, code="": issues.append(Issue(k, msg, "warning", code))  # noqa: E731

    if not m.name_or_path.strip():
        err("model.name_or_path", "must name a model, got an empty value")
    if m.load_in_4bit and m.load_in_8bit:
        err("model.load_in_8bit", "cannot be combined with model.load_in_4bit=true; choose one")
    if t.learning_rate <= 0 and not any(i.field == "train.learning_rate" for i in issues):
        err("train.learning_rate", f"must be > 0, got {t.learning_rate}")
    if t.max_steps == 0:
        err("train.max_steps", "must be -1 (use epochs) or ≥ 1, got 0")
    if isinstance(lo.target_modules, list) and not lo.target_modules:
        err("lora.target_modules", "must name at least one module, got an empty list")
    if d.max_tokens and d.min_tokens and d.min_tokens > d.max_tokens:
        err("data.min_tokens", f"must be ≤ data.max_tokens ({d.max_tokens}), got {d.min_tokens}")
    if not d.source.strip():
        err("data.source", "must name a dataset, got an empty value")
    if any(x < 0 for x in lo.layers_to_transform):
        err("lora.layers_to_transform", f"layer indices must be ≥ 0, got {lo.layers_to_transform}")
    if lo.use_dora and (m.load_in_4bit or m.load_in_8bit) and lo.init_lora_weights != "default":
        warn("lora.init_lora_weights", "DoRA on a quantized base supports only the default initialisation")
    if lo.init_lora_weights in ("olora", "pissa", "pissa_niter_4") and (m.load_in_4bit or m.load_in_8bit):
        err("lora.init_lora_weights",
            f"{lo.init_lora_weights} needs full-precision base weights, got model.load_in_4bit/8bit=true")

    # advice: the seeds' folklore, each with its reason
    if lo.r > 0 and lo.lora_alpha > 0:
        ratio = lo.lora_alpha / lo.r
        if lo.use_rslora:
            eff = lo.lora_alpha / math.sqrt(lo.r)
            if eff < 1:
                warn("lora.lora_alpha", f"with rsLoRA the scale alpha/√r = {eff:.2f} < 1: the update is damped; "
                                        f"raise alpha to at least √r = {math.sqrt(lo.r):.0f}", "rslora_scale")
        elif not 1 <= ratio <= 4:
            warn("lora.lora_alpha", f"alpha/r = {ratio:g} is outside 1–4 (alpha {lo.lora_alpha}, r {lo.r}): "
                                    "training may be too weak or unstable", "alpha_ratio")
        if lo.r >= 128 and not lo.use_rslora and lo.lora_alpha < 2 * lo.r:
            warn("lora.r", f"at rank {lo.r} use rsLoRA or alpha = 2r ({2 * lo.r}); with alpha/r the update "
                           "shrinks as rank grows", "high_rank")
    heavy = [x for x in lo.modules_to_save if x in ("lm_head", "embed_tokens")]
    if heavy:
        warn("lora.modules_to_save", f"{', '.join(heavy)} are trained in full: they cost much more memory and "
                                     "disk than the adapter (the vocabulary × hidden matrix each)", "heavy_modules")
    if t.num_train_epochs > 3 and t.max_steps < 0:
        warn("train.num_train_epochs", f"{t.num_train_epochs:g} epochs: many passes over a small set make the "
                                       "model forget what it knew; 1–3 is usual", "many_epochs")
    if n_rows is not None and n_rows < 4 * lo.r and lo.r >= 64:
        warn("lora.r", f"rank {lo.r} on {n_rows} rows: a rank this high can memorise a small set; 8–32 may do",
             "rank_vs_rows")
    cut = getattr(stats, "n_answer_cut", 0)
    if cut:
        warn("data.max_length", f"{cut} of {stats.n} rows are longer than {d.max_length} tokens and lose the end of "
                                f"their answer (an MCQ, its answer key): the model learns answers that stop short; "
                                f"raise data.max_length to {stats.suggested_max_length} (the longest row: "
                                f"{stats.max} tokens)", "answer_cut")
    if t.embedding_learning_rate and not heavy:
        warn("train.embedding_learning_rate", "is set but no embed_tokens / lm_head is in lora.modules_to_save, "
                                              "so it has no effect", "embedding_lr_unused")
    if lo.init_lora_weights != "default" and lo.use_dora:
        warn("lora.use_dora", f"DoRA with init_lora_weights={lo.init_lora_weights} is rarely tested; "
                              "prefer the default initialisation", "dora_init")
    issues.sort(key=lambda i: i.level != "error")
    return issues


def check(cfg: RunConfig, **kwargs: Any) -> list[Issue]:
    """Validate and raise one ConfigError listing every error; return the warnings."""
    issues = validate(cfg, **kwargs)
    errors = [i for i in issues if i.level == "error"]
    if errors:
        raise ConfigError("; ".join(map(str, errors)), field=errors[0].field, issues=errors)
    return [i for i in issues if i.level == "warning"]
