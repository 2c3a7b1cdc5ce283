"""GLSL for the avatar. Blendshapes run on the GPU: every shape's position and normal deltas sit in two
float textures, texel (shape * V + vertex) laid out row-major, and the vertex shader sums the weighted
deltas of the shapes in use (their indices and weights come in as uniforms). Under a software renderer
the CPU sums them into the vertices instead and the shader is told of no shapes (renderer.py).
"""

MAX_ACTIVE_SHAPES = 52

LIGHTING = """
uniform vec3 light_dir;     // towards the key light, world space
uniform vec3 eye_pos;
vec3 shade(vec3 colour, vec3 n, vec3 world, float shininess, float spec) {
    vec3 l = normalize(light_dir);
    vec3 v = normalize(eye_pos - world);
    float key = max(dot(n, l), 0.0);
    float fill = max(dot(n, normalize(vec3(-0.6, 0.2, 0.5))), 0.0) * 0.35;
    float sky = 0.5 + 0.5 * n.y;                         // hemisphere ambient
    float rim = pow(1.0 - max(dot(n, v), 0.0), 3.0) * 0.25;
    vec3 h = normalize(l + v);
    float s = pow(max(dot(n, h), 0.0), shininess) * spec;
    vec3 ambient = mix(vec3(0.20, 0.18, 0.18), vec3(0.34, 0.36, 0.40), sky);
    vec3 lit = colour * (ambient + 0.85 * key + fill) + vec3(rim) + vec3(s);
    return pow(lit, vec3(1.0 / 1.15));
}
"""

HEAD_VERTEX = f"""
#version 330
uniform mat4 mvp;
uniform mat4 model;
uniform sampler2D position_deltas;
uniform sampler2D normal_deltas;
uniform int n_vertices;
uniform int texture_width;
uniform int n_active;
uniform int active_shape[{MAX_ACTIVE_SHAPES}];
uniform float active_weight[{MAX_ACTIVE_SHAPES}];
in vec3 in_position;
in vec3 in_normal;
in vec3 in_colour;
in float in_dark_inside;
out vec3 v_world;
out vec3 v_normal;
out vec3 v_colour;
out float v_dark_inside;

ivec2 texel(int shape) {{
    int i = shape * n_vertices + gl_VertexID;
    return ivec2(i % texture_width, i / texture_width);
}}

void main() {{
    vec3 p = in_position;
    vec3 n = in_normal;
    for (int k = 0; k < n_active; ++k) {{
        ivec2 t = texel(active_shape[k]);
        p += active_weight[k] * texelFetch(position_deltas, t, 0).xyz;
        n += active_weight[k] * texelFetch(normal_deltas, t, 0).xyz;
    }}
    vec4 world = model * vec4(p, 1.0);
    v_world = world.xyz;
    v_normal = mat3(model) * n;
    v_colour = in_colour;
    v_dark_inside = in_dark_inside;
    gl_Position = mvp * vec4(p, 1.0);
}}
"""

HEAD_FRAGMENT = (
    """
#version 330
in vec3 v_world;
in vec3 v_normal;
in vec3 v_colour;
in float v_dark_inside;
out vec4 f_colour;
"""
    + LIGHTING
    + """
void main() {
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) {
        if (v_dark_inside > 0.5) {               // the inside of the skin: the mouth cavity
            f_colour = vec4(0.16, 0.05, 0.06, 1.0);
            return;
        }
        n = -n;
    }
    f_colour = vec4(shade(v_colour, n, v_world, 24.0, 0.10), 1.0);
}
"""
)

MESH_VERTEX = """
#version 330
uniform mat4 mvp;
uniform mat4 model;
in vec3 in_position;
in vec3 in_normal;
in vec3 in_colour;
out vec3 v_world;
out vec3 v_normal;
out vec3 v_colour;
void main() {
    v_world = (model * vec4(in_position, 1.0)).xyz;
    v_normal = mat3(model) * in_normal;
    v_colour = in_colour;
    gl_Position = mvp * vec4(in_position, 1.0);
}
"""

MESH_FRAGMENT = (
    """
#version 330
uniform float shininess;
uniform float specular;
in vec3 v_world;
in vec3 v_normal;
in vec3 v_colour;
out vec4 f_colour;
"""
    + LIGHTING
    + """
void main() {
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;
    f_colour = vec4(shade(v_colour, n, v_world, shininess, specular), 1.0);
}
"""
)

# The body: one mesh skinned on the GPU (linear blend skinning, up to four joints per vertex). Each
# joint's matrix takes a rest-pose point to its posed place; rest rotations are identity, so normals
# turn by the same blended rotation.
MAX_JOINTS = 64
SKINNED_VERTEX = """
#version 330
uniform mat4 view_projection;
uniform mat4 skin[64];
in vec3 in_position;
in vec3 in_normal;
in vec3 in_colour;
in ivec4 in_joints;
in vec4 in_weights;
out vec3 v_world;
out vec3 v_normal;
out vec3 v_colour;
void main() {
    mat4 m = in_weights.x * skin[in_joints.x] + in_weights.y * skin[in_joints.y]
           + in_weights.z * skin[in_joints.z] + in_weights.w * skin[in_joints.w];
    vec4 world = m * vec4(in_position, 1.0);
    v_world = world.xyz;
    v_normal = mat3(m) * in_normal;
    v_colour = in_colour;
    gl_Position = view_projection * world;
}
"""

BACKDROP_VERTEX = """
#version 330
in vec2 in_position;
out vec2 v_uv;
void main() {
    v_uv = in_position * 0.5 + 0.5;
    gl_Position = vec4(in_position, 0.999, 1.0);
}
"""

BACKDROP_FRAGMENT = """
#version 330
in vec2 v_uv;
out vec4 f_colour;
void main() {
    vec3 top = vec3(0.30, 0.34, 0.40);
    vec3 bottom = vec3(0.12, 0.13, 0.16);
    float vignette = 1.0 - 0.35 * length(v_uv - vec2(0.5, 0.55));
    f_colour = vec4(mix(bottom, top, v_uv.y) * vignette, 1.0);
}
"""

OVERLAY_VERTEX = """
#version 330
in vec2 in_position;
in vec2 in_uv;
out vec2 v_uv;
void main() {
    v_uv = in_uv;
    gl_Position = vec4(in_position, 0.0, 1.0);
}
"""

OVERLAY_FRAGMENT = """
#version 330
uniform sampler2D overlay;
in vec2 v_uv;
out vec4 f_colour;
void main() {
    f_colour = texture(overlay, v_uv);
}
"""

# A user's avatar (clients/avatar/user_avatar.py): posed on the CPU, so world-space vertices come in; the
# base colour is the vertex colour times the material's texture where it has one. Alpha below 0.5 is cut
# out (hair cards and lashes are usually alpha-masked).
USER_VERTEX = """
#version 330
uniform mat4 view_projection;
in vec3 in_position;
in vec3 in_normal;
in vec4 in_colour;
in vec2 in_uv;
out vec3 v_world;
out vec3 v_normal;
out vec4 v_colour;
out vec2 v_uv;
void main() {
    v_world = in_position;
    v_normal = in_normal;
    v_colour = in_colour;
    v_uv = in_uv;
    gl_Position = view_projection * vec4(in_position, 1.0);
}
"""

USER_FRAGMENT = (
    """
#version 330
uniform sampler2D base_colour;
uniform int textured;
in vec3 v_world;
in vec3 v_normal;
in vec4 v_colour;
in vec2 v_uv;
out vec4 f_colour;
"""
    + LIGHTING
    + """
void main() {
    vec4 colour = v_colour;
    if (textured == 1) colour *= texture(base_colour, v_uv);
    if (colour.a < 0.5) discard;
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;
    f_colour = vec4(shade(colour.rgb, n, v_world, 16.0, 0.08), 1.0);
}
"""
)
