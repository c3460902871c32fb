"""What a model file may construct: an explicit allowlist of full dotted names, exactly as skops records them.

A skops file names every type and function it will build as ``module.name`` (a ``FunctionTransformer``'s
function included), and loading it resolves each name by importing the module and taking the attribute. A name
is therefore only as safe as the object it resolves to, whatever module it is reached through:
``numpy.lib._datasource._open`` is the built-in ``open`` and ``sklearn.utils.discovery.import_module`` is
``importlib.import_module``. So nothing is trusted by prefix and there is no deny list: a name is accepted only
if it is listed here, character for character, and every name here was reviewed as harmless to construct or
call with whatever arguments a file supplies. ``tests/models_registry/test_allowlist.py`` walks scikit-learn,
numpy and scipy to prove that no accepted name resolves to a callable that opens files, imports, executes code
or starts processes, and that every listed name still resolves.

Left out on purpose, so refused:

- scikit-learn's text vectorizers (``CountVectorizer``, ``TfidfVectorizer``, ``HashingVectorizer``): with
  ``input="filename"`` or ``input="file"`` they open the files that a prediction's features name.
- ``Birch``: skops cannot save it.
- ``PyFuncDistance32``/``64``: wrap an arbitrary Python function as a distance metric.
- bound methods, ``operator`` getters and callers, and every function that is not in the short list of pure
  numerical functions below.

The libraries are pinned (pyproject.toml). After an upgrade, a listed name that moved fails the test that every
name resolves, and a fitted file naming a new internal type is refused, naming it, until it is reviewed here.
"""


def _names(module: str, *attributes: str) -> set[str]:
    return {f"{module}.{attribute}" for attribute in attributes}


# The containers and scalars skops writes for plain Python data (dicts of parameters, lists of steps, slices of
# columns, ``dtype=float`` or ``dtype_include=object`` as a parameter).
PLAIN_DATA = frozenset(
    _names("builtins", "bool", "dict", "float", "int", "list", "object", "set", "slice", "str", "tuple")
)

# Arrays, masked arrays (search results), dtypes and numpy's scalar types (the abstract ones as column
# selectors' ``dtype_include``): data, built without reading files.
NUMPY_DATA = frozenset(
    {
        *_names("numpy", "ndarray", "dtype"),
        *_names("numpy", "number", "integer", "floating"),
        *_names("numpy.ma", "MaskedArray"),
        *_names(
            "numpy",
            "bool",
            "bytes_",
            "clongdouble",
            "complex128",
            "complex64",
            "datetime64",
            "float16",
            "float32",
            "float64",
            "int16",
            "int32",
            "int64",
            "int8",
            "longdouble",
            "longlong",
            "object_",
            "str_",
            "timedelta64",
            "uint16",
            "uint32",
            "uint64",
            "uint8",
            "ulonglong",
            "void",
        ),
    }
)

# Fitted ``random_state`` objects and the bit generators a ``Generator`` is rebuilt from (skops checks that the
# bit generator it builds really is one).
NUMPY_RANDOM_STATE = frozenset(
    {
        *_names("numpy.random.mtrand", "RandomState"),
        *_names("numpy.random._generator", "Generator"),
        *_names("numpy.random", "MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"),
    }
)

# Sparse matrices and arrays (support vectors fitted on sparse input); skops reads them with
# ``scipy.sparse.load_npz``, which refuses pickled content.
SCIPY_SPARSE = frozenset(
    {
        *_names("scipy.sparse._csr", "csr_matrix", "csr_array"),
        *_names("scipy.sparse._csc", "csc_matrix", "csc_array"),
        *_names("scipy.sparse._coo", "coo_matrix", "coo_array"),
    }
)

# scikit-learn's estimators, transformers and pipelines: skops' own default list (``all_estimators()``) written
# out, without the text vectorizers and Birch (see above), plus the experimental ones (``IterativeImputer`` and
# the successive-halving searches), which it only enumerates once enabled. Their constructors only store
# parameters.
SKLEARN_ESTIMATORS = frozenset(
    {
        *_names("sklearn.calibration", "CalibratedClassifierCV"),
        *_names("sklearn.cluster._affinity_propagation", "AffinityPropagation"),
        *_names("sklearn.cluster._agglomerative", "AgglomerativeClustering", "FeatureAgglomeration"),
        *_names("sklearn.cluster._bicluster", "SpectralBiclustering", "SpectralCoclustering"),
        *_names("sklearn.cluster._bisect_k_means", "BisectingKMeans"),
        *_names("sklearn.cluster._dbscan", "DBSCAN"),
        *_names("sklearn.cluster._hdbscan.hdbscan", "HDBSCAN"),
        *_names("sklearn.cluster._kmeans", "KMeans", "MiniBatchKMeans"),
        *_names("sklearn.cluster._mean_shift", "MeanShift"),
        *_names("sklearn.cluster._optics", "OPTICS"),
        *_names("sklearn.cluster._spectral", "SpectralClustering"),
        *_names("sklearn.compose._column_transformer", "ColumnTransformer"),
        *_names("sklearn.compose._target", "TransformedTargetRegressor"),
        *_names("sklearn.covariance._elliptic_envelope", "EllipticEnvelope"),
        *_names("sklearn.covariance._empirical_covariance", "EmpiricalCovariance"),
        *_names("sklearn.covariance._graph_lasso", "GraphicalLasso", "GraphicalLassoCV"),
        *_names("sklearn.covariance._robust_covariance", "MinCovDet"),
        *_names("sklearn.covariance._shrunk_covariance", "LedoitWolf", "OAS", "ShrunkCovariance"),
        *_names("sklearn.cross_decomposition._pls", "CCA", "PLSCanonical", "PLSRegression", "PLSSVD"),
        *_names(
            "sklearn.decomposition._dict_learning", "DictionaryLearning", "MiniBatchDictionaryLearning", "SparseCoder"
        ),
        *_names("sklearn.decomposition._factor_analysis", "FactorAnalysis"),
        *_names("sklearn.decomposition._fastica", "FastICA"),
        *_names("sklearn.decomposition._incremental_pca", "IncrementalPCA"),
        *_names("sklearn.decomposition._kernel_pca", "KernelPCA"),
        *_names("sklearn.decomposition._lda", "LatentDirichletAllocation"),
        *_names("sklearn.decomposition._nmf", "MiniBatchNMF", "NMF"),
        *_names("sklearn.decomposition._pca", "PCA"),
        *_names("sklearn.decomposition._sparse_pca", "MiniBatchSparsePCA", "SparsePCA"),
        *_names("sklearn.decomposition._truncated_svd", "TruncatedSVD"),
        *_names("sklearn.discriminant_analysis", "LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis"),
        *_names("sklearn.dummy", "DummyClassifier", "DummyRegressor"),
        *_names("sklearn.ensemble._bagging", "BaggingClassifier", "BaggingRegressor"),
        *_names(
            "sklearn.ensemble._forest",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
            "RandomForestClassifier",
            "RandomForestRegressor",
            "RandomTreesEmbedding",
        ),
        *_names("sklearn.ensemble._gb", "GradientBoostingClassifier", "GradientBoostingRegressor"),
        *_names(
            "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
            "HistGradientBoostingClassifier",
            "HistGradientBoostingRegressor",
        ),
        *_names("sklearn.ensemble._iforest", "IsolationForest"),
        *_names("sklearn.ensemble._stacking", "StackingClassifier", "StackingRegressor"),
        *_names("sklearn.ensemble._voting", "VotingClassifier", "VotingRegressor"),
        *_names("sklearn.ensemble._weight_boosting", "AdaBoostClassifier", "AdaBoostRegressor"),
        *_names("sklearn.feature_extraction._dict_vectorizer", "DictVectorizer"),
        *_names("sklearn.feature_extraction._hash", "FeatureHasher"),
        *_names("sklearn.feature_extraction.image", "PatchExtractor"),
        *_names("sklearn.feature_extraction.text", "TfidfTransformer"),
        *_names("sklearn.feature_selection._from_model", "SelectFromModel"),
        *_names("sklearn.feature_selection._rfe", "RFE", "RFECV"),
        *_names("sklearn.feature_selection._sequential", "SequentialFeatureSelector"),
        *_names(
            "sklearn.feature_selection._univariate_selection",
            "GenericUnivariateSelect",
            "SelectFdr",
            "SelectFpr",
            "SelectFwe",
            "SelectKBest",
            "SelectPercentile",
        ),
        *_names("sklearn.feature_selection._variance_threshold", "VarianceThreshold"),
        *_names("sklearn.frozen._frozen", "FrozenEstimator"),
        *_names("sklearn.gaussian_process._gpc", "GaussianProcessClassifier"),
        *_names("sklearn.gaussian_process._gpr", "GaussianProcessRegressor"),
        *_names("sklearn.impute._base", "MissingIndicator", "SimpleImputer"),
        *_names("sklearn.impute._iterative", "IterativeImputer"),
        *_names("sklearn.impute._knn", "KNNImputer"),
        *_names("sklearn.isotonic", "IsotonicRegression"),
        *_names(
            "sklearn.kernel_approximation",
            "AdditiveChi2Sampler",
            "Nystroem",
            "PolynomialCountSketch",
            "RBFSampler",
            "SkewedChi2Sampler",
        ),
        *_names("sklearn.kernel_ridge", "KernelRidge"),
        *_names("sklearn.linear_model._base", "LinearRegression"),
        *_names("sklearn.linear_model._bayes", "ARDRegression", "BayesianRidge"),
        *_names(
            "sklearn.linear_model._coordinate_descent",
            "ElasticNet",
            "ElasticNetCV",
            "Lasso",
            "LassoCV",
            "MultiTaskElasticNet",
            "MultiTaskElasticNetCV",
            "MultiTaskLasso",
            "MultiTaskLassoCV",
        ),
        *_names("sklearn.linear_model._glm.glm", "GammaRegressor", "PoissonRegressor", "TweedieRegressor"),
        *_names("sklearn.linear_model._huber", "HuberRegressor"),
        *_names("sklearn.linear_model._least_angle", "Lars", "LarsCV", "LassoLars", "LassoLarsCV", "LassoLarsIC"),
        *_names("sklearn.linear_model._logistic", "LogisticRegression", "LogisticRegressionCV"),
        *_names("sklearn.linear_model._omp", "OrthogonalMatchingPursuit", "OrthogonalMatchingPursuitCV"),
        *_names(
            "sklearn.linear_model._passive_aggressive", "PassiveAggressiveClassifier", "PassiveAggressiveRegressor"
        ),
        *_names("sklearn.linear_model._perceptron", "Perceptron"),
        *_names("sklearn.linear_model._quantile", "QuantileRegressor"),
        *_names("sklearn.linear_model._ransac", "RANSACRegressor"),
        *_names("sklearn.linear_model._ridge", "Ridge", "RidgeCV", "RidgeClassifier", "RidgeClassifierCV"),
        *_names("sklearn.linear_model._stochastic_gradient", "SGDClassifier", "SGDOneClassSVM", "SGDRegressor"),
        *_names("sklearn.linear_model._theil_sen", "TheilSenRegressor"),
        *_names("sklearn.manifold._classical_mds", "ClassicalMDS"),
        *_names("sklearn.manifold._isomap", "Isomap"),
        *_names("sklearn.manifold._locally_linear", "LocallyLinearEmbedding"),
        *_names("sklearn.manifold._mds", "MDS"),
        *_names("sklearn.manifold._spectral_embedding", "SpectralEmbedding"),
        *_names("sklearn.manifold._t_sne", "TSNE"),
        *_names("sklearn.mixture._bayesian_mixture", "BayesianGaussianMixture"),
        *_names("sklearn.mixture._gaussian_mixture", "GaussianMixture"),
        *_names(
            "sklearn.model_selection._classification_threshold",
            "FixedThresholdClassifier",
            "TunedThresholdClassifierCV",
        ),
        *_names("sklearn.model_selection._search", "GridSearchCV", "RandomizedSearchCV"),
        *_names("sklearn.model_selection._search_successive_halving", "HalvingGridSearchCV", "HalvingRandomSearchCV"),
        *_names("sklearn.multiclass", "OneVsOneClassifier", "OneVsRestClassifier", "OutputCodeClassifier"),
        *_names(
            "sklearn.multioutput",
            "ClassifierChain",
            "MultiOutputClassifier",
            "MultiOutputRegressor",
            "RegressorChain",
        ),
        *_names("sklearn.naive_bayes", "BernoulliNB", "CategoricalNB", "ComplementNB", "GaussianNB", "MultinomialNB"),
        *_names("sklearn.neighbors._classification", "KNeighborsClassifier", "RadiusNeighborsClassifier"),
        *_names("sklearn.neighbors._graph", "KNeighborsTransformer", "RadiusNeighborsTransformer"),
        *_names("sklearn.neighbors._kde", "KernelDensity"),
        *_names("sklearn.neighbors._lof", "LocalOutlierFactor"),
        *_names("sklearn.neighbors._nca", "NeighborhoodComponentsAnalysis"),
        *_names("sklearn.neighbors._nearest_centroid", "NearestCentroid"),
        *_names("sklearn.neighbors._regression", "KNeighborsRegressor", "RadiusNeighborsRegressor"),
        *_names("sklearn.neighbors._unsupervised", "NearestNeighbors"),
        *_names("sklearn.neural_network._multilayer_perceptron", "MLPClassifier", "MLPRegressor"),
        *_names("sklearn.neural_network._rbm", "BernoulliRBM"),
        *_names("sklearn.pipeline", "FeatureUnion", "Pipeline"),
        *_names(
            "sklearn.preprocessing._data",
            "Binarizer",
            "KernelCenterer",
            "MaxAbsScaler",
            "MinMaxScaler",
            "Normalizer",
            "PowerTransformer",
            "QuantileTransformer",
            "RobustScaler",
            "StandardScaler",
        ),
        *_names("sklearn.preprocessing._discretization", "KBinsDiscretizer"),
        *_names("sklearn.preprocessing._encoders", "OneHotEncoder", "OrdinalEncoder"),
        *_names("sklearn.preprocessing._function_transformer", "FunctionTransformer"),
        *_names("sklearn.preprocessing._label", "LabelBinarizer", "LabelEncoder", "MultiLabelBinarizer"),
        *_names("sklearn.preprocessing._polynomial", "PolynomialFeatures", "SplineTransformer"),
        *_names("sklearn.preprocessing._target_encoder", "TargetEncoder"),
        *_names("sklearn.random_projection", "GaussianRandomProjection", "SparseRandomProjection"),
        *_names("sklearn.semi_supervised._label_propagation", "LabelPropagation", "LabelSpreading"),
        *_names("sklearn.semi_supervised._self_training", "SelfTrainingClassifier"),
        *_names("sklearn.svm._classes", "LinearSVC", "LinearSVR", "NuSVC", "NuSVR", "OneClassSVM", "SVC", "SVR"),
        *_names(
            "sklearn.tree._classes",
            "DecisionTreeClassifier",
            "DecisionTreeRegressor",
            "ExtraTreeClassifier",
            "ExtraTreeRegressor",
        ),
    }
)

# Internal scikit-learn types that fitted estimators hold, found by saving fitted pipelines of the common
# estimators and reading the names skops records. Each is numerical state with no file or process access.
SKLEARN_INTERNALS = frozenset(
    {
        # Tree structures of decision trees, forests, gradient boosting and histogram gradient boosting.
        *_names("sklearn.tree._tree", "Tree"),
        *_names("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
        *_names("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
        # Loss and link functions of gradient boosting, SGD, logistic regression and the GLMs.
        *_names(
            "sklearn._loss.loss",
            "AbsoluteError",
            "ExponentialLoss",
            "HalfBinomialLoss",
            "HalfGammaLoss",
            "HalfMultinomialLoss",
            "HalfPoissonLoss",
            "HalfSquaredError",
            "HalfTweedieLoss",
            "HalfTweedieLossIdentity",
            "HuberLoss",
            "PinballLoss",
        ),
        *_names(
            "sklearn._loss.link",
            "HalfLogitLink",
            "IdentityLink",
            "Interval",
            "LogLink",
            "LogitLink",
            "MultinomialLogit",
        ),
        *_names(
            "sklearn._loss._loss",
            "CyAbsoluteError",
            "CyExponentialLoss",
            "CyHalfBinomialLoss",
            "CyHalfGammaLoss",
            "CyHalfMultinomialLoss",
            "CyHalfPoissonLoss",
            "CyHalfSquaredError",
            "CyHalfTweedieLoss",
            "CyHalfTweedieLossIdentity",
            "CyHuberLoss",
            "CyPinballLoss",
        ),
        *_names(
            "sklearn.linear_model._sgd_fast",
            "EpsilonInsensitive",
            "Hinge",
            "ModifiedHuber",
            "SquaredEpsilonInsensitive",
            "SquaredHinge",
        ),
        # The fitted calibrators of CalibratedClassifierCV.
        *_names("sklearn.calibration", "_CalibratedClassifier", "_SigmoidCalibration", "_TemperatureScaling"),
        # Neighbour search trees and the built-in distance metrics of the neighbours estimators.
        *_names("sklearn.neighbors._kd_tree", "KDTree"),
        *_names("sklearn.neighbors._ball_tree", "BallTree"),
        *{
            f"sklearn.metrics._dist_metrics.{metric}Distance{bits}"
            for metric in (
                "BrayCurtis",
                "Canberra",
                "Chebyshev",
                "Dice",
                "Euclidean",
                "Hamming",
                "Haversine",
                "Jaccard",
                "Kulsinski",
                "Mahalanobis",
                "Manhattan",
                "Matching",
                "Minkowski",
                "RogersTanimoto",
                "RussellRao",
                "SEuclidean",
                "SokalMichener",
                "SokalSneath",
            )
            for bits in (32, 64)
        },
        # The optimiser state of a fitted MLP.
        *_names("sklearn.neural_network._stochastic_optimizers", "AdamOptimizer", "SGDOptimizer"),
        # Gaussian process classifiers' per-class models and kernels.
        *_names("sklearn.gaussian_process._gpc", "_BinaryGaussianProcessClassifierLaplace"),
        *_names(
            "sklearn.gaussian_process.kernels",
            "CompoundKernel",
            "ConstantKernel",
            "DotProduct",
            "ExpSineSquared",
            "Exponentiation",
            "Matern",
            "PairwiseKernel",
            "Product",
            "RBF",
            "RationalQuadratic",
            "Sum",
            "WhiteKernel",
        ),
        # Named sub-estimators of voting and stacking ensembles, a column transformer's dtype/pattern selector,
        # and the per-feature models of IterativeImputer.
        *_names("sklearn.utils._bunch", "Bunch"),
        *_names("sklearn.compose._column_transformer", "make_column_selector"),
        *_names("sklearn.impute._iterative", "_ImputerTriplet"),
        # The cross-validation splitters, scorers and metadata-routing records that search and threshold-tuning
        # estimators keep (a scorer's metric function is checked like any other name).
        *_names(
            "sklearn.model_selection._split",
            "GroupKFold",
            "KFold",
            "LeaveOneOut",
            "PredefinedSplit",
            "RepeatedKFold",
            "RepeatedStratifiedKFold",
            "ShuffleSplit",
            "StratifiedGroupKFold",
            "StratifiedKFold",
            "StratifiedShuffleSplit",
            "TimeSeriesSplit",
        ),
        *_names("sklearn.metrics._scorer", "_CurveScorer", "_PassthroughScorer", "_Scorer"),
        *_names("sklearn.utils._metadata_requests", "MetadataRequest", "MethodMetadataRequest"),
    }
)

# The B-spline basis a fitted SplineTransformer keeps.
SCIPY_INTERNALS = frozenset(_names("scipy.interpolate._bsplines", "BSpline"))

# Functions a file may name, for FunctionTransformer and the like: pure numerical functions only (no I/O, no
# side effects beyond an ``out=`` array the file itself supplies). ``functools.partial`` binds arguments to one
# of them; the function inside is checked like any other name.
PURE_FUNCTIONS = frozenset(
    {
        *_names(
            "numpy",
            "absolute",
            "cbrt",
            "clip",
            "exp",
            "expm1",
            "log",
            "log10",
            "log1p",
            "log2",
            "sign",
            "sqrt",
            "square",
        ),
        # HistGradientBoosting's categorical preprocessing validates its input with a partial of check_array.
        *_names("sklearn.utils.validation", "check_array"),
        # A fitted SplineTransformer's BSpline converts arrays with this.
        *_names("scipy._lib.array_api_compat.numpy._aliases", "asarray"),
        # Score functions of univariate feature selection, and the metrics behind the usual ``scoring=`` names of
        # searches and threshold tuning.
        *_names("sklearn.feature_selection._univariate_selection", "chi2", "f_classif"),
        *_names(
            "sklearn.metrics._classification",
            "accuracy_score",
            "balanced_accuracy_score",
            "brier_score_loss",
            "f1_score",
            "log_loss",
            "precision_score",
            "recall_score",
        ),
        *_names("sklearn.metrics._ranking", "average_precision_score", "roc_auc_score"),
        *_names("functools", "partial"),
    }
)

# The platform's own estimator: the fairness-constrained mixture retraining produces (models_registry.fair_mixture),
# pure numerical code reviewed like the rest; its parts are listed scikit-learn types.
PLATFORM_ESTIMATORS = frozenset(_names("models_registry.fair_mixture", "FairMixtureClassifier"))

MODEL_FILE_ALLOWLIST: frozenset[str] = (
    PLAIN_DATA
    | NUMPY_DATA
    | NUMPY_RANDOM_STATE
    | SCIPY_SPARSE
    | SCIPY_INTERNALS
    | SKLEARN_ESTIMATORS
    | SKLEARN_INTERNALS
    | PURE_FUNCTIONS
    | PLATFORM_ESTIMATORS
)


def is_allowed(type_name: str) -> bool:
    """Whether a model file may construct or call ``type_name``: its full dotted name, exactly as skops records it."""
    return type_name in MODEL_FILE_ALLOWLIST
